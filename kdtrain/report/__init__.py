"""Reports: the results document and the budget curve from runs' summaries."""
