"""Alembic's environment, run by `flask --app {{ cookiecutter.package_name }} db ...` and at start.

The models' metadata is the target (every model imported by the app counts, yours too), the
engine is the app's, and batch mode lets the same migrations alter tables on SQLite.
"""

import logging
import warnings

from alembic import context
from flask import current_app

log = logging.getLogger("alembic.env")
config = context.config
migrate = current_app.extensions["migrate"]
target_metadata = migrate.db.metadata
# The lower(email) indexes are written by hand in 0001; SQLite cannot reflect them back.
warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression")


def skip_empty_autogenerate(_context: object, _revision: object, directives: list) -> None:
    """`db migrate` with no model change writes no empty revision."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def run_offline() -> None:
    """`db upgrade --sql`: print the SQL instead of running it."""
    url = migrate.db.engine.url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    options = dict(migrate.configure_args)
    options.setdefault("process_revision_directives", skip_empty_autogenerate)
    with migrate.db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
