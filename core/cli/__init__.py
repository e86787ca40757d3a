"""The command line: one definition of each verb, a fast parser and a typer front end."""
