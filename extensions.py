"""Flask extensions, created unbound; `create_app` binds them with `init_app`."""
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login = LoginManager()
csrf = CSRFProtect()
mail = Mail()
babel = Babel()
# Password guessing on the login, setup and password pages (blueprints/auth.py), counted in the
# app's Redis. Moving window: "10 failures in any 15 minutes" holds exactly, and the time to
# retry is when the oldest counted failure leaves the window. Errors of the storage (Redis down)
# are logged and let the request through: a Redis outage must not lock the merchant out.
limiter = Limiter(key_func=get_remote_address, strategy="moving-window", swallow_errors=True)
