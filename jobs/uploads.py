"""An upload handler that refuses an oversized file while it streams in.

Django's own handlers keep a small file in memory and write a large one to a
temporary file; left alone they would store the whole of whatever was sent
before the form could say it is too big. This handler runs first and stops
each file at the cap, so nothing past it is ever kept. The rest of the form is
still read, so the page can say what went wrong and keep what was typed.
"""

from django.core.files.uploadhandler import FileUploadHandler, SkipFile

from jobs.images import MAX_UPLOAD_BYTES

# The form's text fields and multipart framing, beside one file at the cap.
REQUEST_SLACK = 256 * 1024


class CappedUploadHandler(FileUploadHandler):
    """Skip any file over MAX_UPLOAD_BYTES; the refusals are left on request.refused_uploads."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # A body this large cannot hold a file within the cap: refuse every file
        # as it starts, without storing a byte of it.
        self.whole_request_too_big = content_length > MAX_UPLOAD_BYTES + REQUEST_SLACK
        self.request.refused_uploads = {}

    def new_file(
        self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None
    ):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        if self.whole_request_too_big or (content_length or 0) > MAX_UPLOAD_BYTES:
            self._refuse()

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > MAX_UPLOAD_BYTES:
            self._refuse()
        return raw_data

    def file_complete(self, file_size):
        return None  # The next handler builds the file.

    def _refuse(self):
        self.request.refused_uploads[self.field_name] = self.file_name
        raise SkipFile
