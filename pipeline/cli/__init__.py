"""`python -m pipeline`: the command line over the stages."""
