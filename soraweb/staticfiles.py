"""Static files with content-hashed names, and pages that render before collectstatic."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names from collectstatic's manifest (`make run` and the image collect), plain names without one.

    A hashed name lets WhiteNoise send a file with a year-long, immutable cache
    lifetime. Tests and `runserver` never collect: their pages name the files as
    they are, and WhiteNoise serves them from the source folders (WHITENOISE_USE_FINDERS).
    """

    def stored_name(self, name):
        if not self.hashed_files:
            return name
        try:
            return super().stored_name(name)
        except ValueError:  # Added since the last collectstatic.
            return name
