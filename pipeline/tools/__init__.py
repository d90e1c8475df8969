"""Commands that no DVC stage runs (``stage_graph.TOOLS``)."""
