"""DVC stage entry points and the command-line interface of the schedule study."""
