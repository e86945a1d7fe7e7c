"""The HTML report: one self-contained file per case (``<case>/report/index.html``)."""
