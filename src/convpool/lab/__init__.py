"""The lab: explain, filters, ablate, invariance, report (matplotlib and rich imported lazily)."""
