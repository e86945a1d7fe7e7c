"""Distribution-shift statistics shared by the data checks (train vs test) and monitoring (reference vs window)."""

from __future__ import annotations

import numpy as np

PSI_EPS = 1e-4  # floor on bin shares inside PSI, so an empty bin does not make it infinite


def psi_js(cur_counts: np.ndarray, ref_shares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSI and Jensen-Shannon distance (base 2) of each row of counts against reference shares.

    Parameters
    ----------
    cur_counts : array of shape (n_windows, n_bins)
        Counts per bin of the data being compared.
    ref_shares : array of shape (n_bins,)
        Shares per bin of the reference (they sum to 1).

    Returns
    -------
    psi, js : arrays of shape (n_windows,)
        NaN for a row with no counts.

    Examples
    --------
    >>> psi, js = psi_js(np.array([[50, 50]]), np.array([0.5, 0.5]))
    >>> float(psi[0]), float(js[0])
    (0.0, 0.0)
    """
    from scipy.spatial.distance import jensenshannon

    cur_counts = np.atleast_2d(np.asarray(cur_counts, dtype=float))
    n = cur_counts.sum(1, keepdims=True)
    q = np.divide(cur_counts, n, out=np.zeros_like(cur_counts), where=n > 0)
    p = np.broadcast_to(np.asarray(ref_shares, dtype=float), q.shape)
    # PSI has no implementation in scipy/statsmodels; it is the symmetric KL divergence of the shares,
    # with the usual floor on empty bins
    pe, qe = np.clip(p, PSI_EPS, None), np.clip(q, PSI_EPS, None)
    psi = ((qe - pe) * np.log(qe / pe)).sum(1)
    has = n[:, 0] > 0
    js = np.full(len(q), np.nan)
    if has.any():
        with np.errstate(invalid="ignore"):
            js[has] = jensenshannon(p[has], q[has], base=2, axis=1)
        # the divergence under the root can round to -1e-17 for identical shares: that is 0, not NaN
        js[has] = np.nan_to_num(js[has], nan=0.0)
    return np.where(has, psi, np.nan), js
