"""Numbers and keys from URLs and query strings: parsed once, strictly, or refused as None."""

# The largest value a BigAutoField (PostgreSQL bigint, SQLite INTEGER) holds.
MAX_PK = 2**63 - 1


def pk_or_none(value):
    """A primary key from untrusted text, or None.

    Only ASCII digits: str.isdigit() also accepts "¹" and "①", which int() refuses,
    and a number past MAX_PK overflows in the database driver rather than matching nothing.
    """
    value = value.strip() if isinstance(value, str) else ""
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number <= MAX_PK else None


def is_pk(value):
    """True for an int a primary key can be (a signed token's payload may be any JSON)."""
    return type(value) is int and 0 < value <= MAX_PK
