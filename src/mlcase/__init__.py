"""mlcase: decision-first applied machine learning."""
__version__ = "0.1.0"
