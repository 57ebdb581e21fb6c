"""The data: dataset sources, the prepared pool and its files, and each seed's splits. No torch."""
