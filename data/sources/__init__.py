"""One converter per public dataset: raw release -> face crops + ``db/<name>_cleaned.csv``."""
