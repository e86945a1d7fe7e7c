"""Governance: personal data in the log, erasure and retention, alert owners, notification, the dead-man's switch.

Modules (each imported only where it is used; nothing here is heavy):

- :mod:`.owners`: which owner each alert kind goes to (``owners:``, ``monitoring.alert_owners``);
- :mod:`.pseudonym`: the keyed hash (HMAC-SHA256, ``MLCASE_LOG_KEY``) of personal data in the log; :mod:`.logkeys`:
  the warning every reader that counts units gives where hashed units come from several keys;
- :mod:`.policy`: what the prediction log keeps of each column (``serving.log_inputs``);
- :mod:`.stores`: every store that holds rows about a subject, behind one small interface
  (``erase(subject)``, ``prune(before)``);
- :mod:`.forget`: ``mlcase forget`` (erasure with a receipt), :mod:`.retention`: ``mlcase retention``;
- :mod:`.notify`: run ``monitoring.notify`` commands per owner; :mod:`.deadman`: the dead-man's switch;
- :mod:`.summary`: what the model card and the report show about all of it.
"""
