from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from extensions import db
from models.base import utcnow


class User(UserMixin, db.Model):
    """An admin of the merchant's notifications."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class ApiToken(db.Model):
    """A bearer token for the events API. Only a SHA-256 of the token is stored: it is shown once."""

    __tablename__ = "api_tokens"
    PREFIX = "mnt_"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so the merchant can tell tokens apart without the secret.
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    @staticmethod
    def hash(token: str) -> str:
        # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    @classmethod
    def issue(cls, name: str) -> tuple["ApiToken", str]:
        """A new token row (not yet added to the session) and the plain token to show once."""
        plain = cls.PREFIX + secrets.token_urlsafe(32)
        return cls(name=name, token_hash=cls.hash(plain), hint=plain[:10]), plain

    @classmethod
    def authenticate(cls, plain: str) -> int | None:
        """The id of the active token `plain`, or None. Records its use, at most once a minute
        (so a busy shop does not turn every call into a token update); the caller commits.

        Columns rather than an ORM object: this runs on every API call."""
        row = db.session.connection().execute(_BY_HASH, {"token_hash": cls.hash(plain)}).first()
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            db.session.execute(db.update(cls).where(cls.id == row.id).values(last_used_at=now))
        return row.id

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# Built once, so SQLAlchemy's compiled-statement cache finds it without recomputing its key.
_BY_HASH = (db.select(ApiToken.id, ApiToken.revoked_at, ApiToken.last_used_at)
            .where(ApiToken.token_hash == db.bindparam("token_hash")))
