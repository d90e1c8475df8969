"""One entry point per DVC stage, named as the stage: ``run(cfg, params)`` (pipeline/cli.py's table)."""
