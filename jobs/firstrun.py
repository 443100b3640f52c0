"""The first account, claimable only by whoever can read the server's console.

While no account exists the server keeps a one-time setup code in a 0600 file under
DATA_DIR and logs it at WARNING when web starts (and `make run` prints it beside the
URL); /setup/ asks for it. It dies with the first account.
"""

import contextlib
import fcntl
import logging
import os
import secrets
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.db import DatabaseError, connection, transaction
from django.utils.crypto import constant_time_compare

log = logging.getLogger(__name__)
# No 0/O, 1/I/L: read off a console and typed by a person. 12 of 31 symbols is ~59 bits.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# Any constant: the PostgreSQL advisory lock that makes "nobody exists yet" and the create one step.
_PG_LOCK_KEY = 0x50FA_0001


def code_path():
    return Path(settings.DATA_DIR) / "setup-code"


def _new_code():
    raw = "".join(secrets.choice(ALPHABET) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))


def setup_code():
    """The current code, made (and logged) on first need; gunicorn's workers all read the one file."""
    code, created = _read_or_create()
    if created:
        _log(code)
    return code


def _log(code):
    log.warning(
        "No account exists yet. To create the first (admin) account open /setup/ and enter "
        "the setup code %s (also in %s).",
        code,
        code_path(),
    )


def _read_or_create():
    path = code_path()
    with open(path.with_name("setup-code.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            return path.read_text().strip(), False
        # Written 0600 from the start: the same protection as DATA_DIR/secret_key, which is stronger.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        code = _new_code()
        with os.fdopen(fd, "w") as out:
            out.write(code + "\n")
        return code, True


def forget_code():
    code_path().unlink(missing_ok=True)


def needed():
    return not get_user_model().objects.exists()


def announce():
    """Log the setup code if the server has no account yet; called as web starts.

    Returns the code, or None (accounts exist, or the database is not ready yet, in
    which case the first visit to /setup/ makes and logs it instead).
    """
    try:
        if not needed():
            forget_code()
            return None
    except DatabaseError:
        return None
    try:
        code, _ = _read_or_create()
    except OSError as exc:  # A read-only DATA_DIR must not stop web from starting.
        log.warning("No account exists yet, and no setup code could be written: %s", exc)
        return None
    _log(code)
    return code


def normalise(code):
    return "".join(code.split()).replace("-", "").upper()


class FirstAccountForm(UserCreationForm):
    setup_code = forms.CharField(
        label="Setup code",
        max_length=40,
        strip=True,
        help_text="Printed in the server's console and log when it started (for example XXXX-XXXX-XXXX).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    field_order = ["setup_code", "username", "password1", "password2"]

    def clean_setup_code(self):
        given = normalise(self.cleaned_data["setup_code"])
        if not given or not constant_time_compare(given, normalise(setup_code())):
            raise forms.ValidationError(
                "This is not the setup code. Copy it from the server's console or log (see above)."
            )
        return given


def create_first_account(form):
    """Save the form's user as the studio's first admin, or return None if someone was first.

    The "nobody exists" check and the insert run in one transaction that holds a lock,
    so concurrent posts with the right code still make exactly one account. SQLite's
    IMMEDIATE transactions (settings) take the write lock at BEGIN; PostgreSQL takes
    an advisory lock held until commit.
    """
    User = get_user_model()
    user = form.save(commit=False)  # Hashes the password before the lock, not while holding it.
    user.is_staff = user.is_superuser = True
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_LOCK_KEY])
        if User.objects.exists():
            return None
        user.save()
        transaction.on_commit(forget_code)
    return user
