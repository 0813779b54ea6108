"""`python cli.py ...` runs the same Typer app as the `zoo` command."""
from zoo.cli import main

if __name__ == "__main__":
    main()
