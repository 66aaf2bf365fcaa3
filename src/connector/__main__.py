"""``python -m connector`` is the ``dealbridge`` command."""

from connector.cli import main

main()
