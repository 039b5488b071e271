from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime, timedelta

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from extensions import db
from models.base import utcnow


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, made with the same method as real ones, checked when the
    username is unknown. Made on first use, not at import time (it costs as much as a login)."""
    return generate_password_hash(secrets.token_urlsafe(16))


class User(UserMixin, db.Model):
    """An admin of the merchant's notifications.

    A session is valid only while it carries the user's current `session_version` (see
    `get_id`): logging out and changing the password move it on, so every cookie issued before,
    copies included, stops working.
    """

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def set_password(self, password: str) -> None:
        """A new password ends every session of this user (the caller commits)."""
        self.password_hash = generate_password_hash(password)
        if self.id is not None:
            self.end_sessions()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def end_sessions(self) -> None:
        """Make every session cookie issued so far invalid (the caller commits)."""
        self.session_version = (self.session_version or 1) + 1

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the id and the session version."""
        return f"{self.id}:{self.session_version}"

    @classmethod
    def from_session(cls, session_id: str) -> "User | None":
        """The user of a session id from `get_id`, or None when it is malformed or out of date
        (issued before a logout or a password change, or by a version that kept the bare id)."""
        user_id, _, version = session_id.partition(":")
        if not (user_id.isdigit() and version.isdigit()):
            return None
        user = db.session.get(cls, int(user_id))
        if user is None or user.session_version != int(version):
            return None
        return user

    @classmethod
    def authenticate(cls, username: str, password: str) -> "User | None":
        """The user whose name and password these are, or None. An unknown name costs the same
        as a wrong password (a dummy hash of the same method is checked), so the time taken does
        not tell which usernames exist."""
        user = db.session.scalar(db.select(cls).filter_by(username=username))
        if user is None:
            check_password_hash(_dummy_hash(), password)
            return None
        return user if user.check_password(password) else None


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
