"""ramp-prep: convert public CT datasets to the RAMP five-class head."""
