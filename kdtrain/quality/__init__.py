"""Dataset quality under a teacher: scores (balance, confidence, diversity, coverage) and curation."""
