"""SQLAlchemy 2.x persistence: models, repositories, unit of work, Alembic migrations."""
