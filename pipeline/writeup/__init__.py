"""The study write-up: verdicts (``findings``), tables, figures and the Markdown text, from metric files."""
