"""What ties the engine together: datasets, synthetic scenes, fusion, metrics, reports, runs."""
