"""``python -m connector`` is the ``dealbridge`` command."""

from connector.admin.cli import main

main()
