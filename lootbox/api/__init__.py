"""Flask-only code: blueprints, authentication, the idempotent decorator, error mapping."""
