"""Multi-objective search over architecture spaces (``elasticnas.search``)."""
