"""fixed: the usual practice, one hand-set sigma for every landmark for the whole run."""

from distlmk.control.base import SigmaController


class FixedSigma(SigmaController):
    name = "fixed"
