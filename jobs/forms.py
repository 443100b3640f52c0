import json
import unicodedata

from django import forms
from django.conf import settings

from jobs import images
from jobs.models import VideoJob

PROMPT_HELP = (
    "Describe the scene, the subject and what moves; add style words such as “cinematic” "
    "or “hand-drawn animation”, the camera motion, and the lighting. "
    "Do not upload or describe photos of real people: the service refuses them."
)
MODEL_NOTES = {
    VideoJob.Model.PLUS: "Faster and cheaper. Good for drafts and most ideas.",
    VideoJob.Model.PRO: "Higher quality, but slower and costlier. For the final cut.",
}


# Unicode categories that draw nothing: controls, format characters (zero-width
# space, byte-order mark), separators, lone combining marks, private use, unassigned.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"}
# Blank characters Unicode files as letters or symbols (Hangul fillers, the blank Braille cell).
_BLANK_CHARACTERS = set("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_text(text):
    return any(
        unicodedata.category(char) not in _INVISIBLE_CATEGORIES and char not in _BLANK_CHARACTERS
        for char in text
    )


class VideoJobForm(forms.ModelForm):
    # A plain FileField: the image is opened once, by jobs.images, with only the formats we accept.
    reference_image = forms.FileField(
        required=False,
        label="Reference image (optional)",
        help_text=(
            "JPEG, PNG or WebP up to 5 MB. It is center-cropped and resized to {}×{} "
            "(landscape) or {}×{} (portrait) to match the orientation."
        ).format(*VideoJob.SIZES["16:9"], *VideoJob.SIZES["9:16"]),
        widget=forms.FileInput(
            attrs={
                "accept": "image/jpeg,image/png,image/webp",
                "data-max-bytes": images.MAX_UPLOAD_BYTES,
                # The preview crops to the size the server will make.
                "data-sizes": json.dumps(VideoJob.SIZES),
            }
        ),
    )

    class Meta:
        model = VideoJob
        fields = [*VideoJob.SETTINGS, "reference_image"]
        labels = {"prompt": "Prompt", "model": "Model", "aspect_ratio": "Orientation", "duration": "Length"}
        help_texts = {"prompt": PROMPT_HELP}
        widgets = {
            "prompt": forms.Textarea(
                attrs={"rows": 6, "placeholder": "A paper boat drifting down a rainy street, cinematic, dusk"}
            ),
            "model": forms.RadioSelect(attrs={"class": "choice__input"}),
            "aspect_ratio": forms.RadioSelect(attrs={"class": "choice__input"}),
            "duration": forms.RadioSelect(attrs={"class": "choice__input"}),
        }
        error_messages = {
            "prompt": {
                "required": "Describe the video you want.",
                "max_length": "Keep the prompt under %(limit_value)d characters (it has %(show_value)d).",
            },
        }

    def __init__(self, *args, refused_uploads=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Files jobs.uploads stopped at the size cap while they streamed in.
        self.refused_uploads = refused_uploads or {}
        if not self.references_allowed:
            # Only the widget: a file posted anyway still reaches clean_reference_image and is refused.
            self.fields["reference_image"].widget.attrs["disabled"] = True

    @property
    def references_allowed(self):
        """The gateway fetches a reference image by URL: a presigned one on the bucket, or
        a signed link to soraweb's public address; with neither there is none."""
        return bool(settings.PUBLIC_BASE_URL or settings.S3_BUCKET)

    def model_choices(self):
        """The model radios, each with the sentence that tells Plus and Pro apart."""
        return [(radio, MODEL_NOTES.get(radio.data["value"], "")) for radio in self["model"]]

    def clean_prompt(self):
        prompt = self.cleaned_data["prompt"]
        if not has_visible_text(prompt):
            # Zero-width spaces and byte-order marks pass `required`, and each prompt is a paid call.
            raise forms.ValidationError("Describe the video you want: this prompt has no visible characters.")
        return prompt

    def clean_reference_image(self):
        if "reference_image" in self.refused_uploads:
            raise forms.ValidationError(
                f"This image is larger than the {images.MAX_UPLOAD_BYTES // 2**20} MB limit: "
                "choose a smaller one (saved as JPEG, a photo is usually far smaller)."
            )
        upload = self.cleaned_data.get("reference_image")
        if upload and not self.references_allowed:
            raise forms.ValidationError(
                "Reference images are turned off on this server: the video service fetches the image "
                "from a public web address, and PUBLIC_BASE_URL is not set. Ask an admin to set it, "
                "or submit without an image."
            )
        return upload

    def clean(self):
        cleaned = super().clean()
        upload, ratio = cleaned.get("reference_image"), cleaned.get("aspect_ratio")
        if upload and ratio:
            try:
                cleaned["reference_image"], self.instance.reference_note = images.normalise(upload, ratio)
            except images.ImageRejected as exc:
                self.add_error("reference_image", str(exc))
        return cleaned

    @classmethod
    def initial_from(cls, job):
        """The settings of an earlier job, for "Use these settings" (the image is not carried over)."""
        return job.job_settings()
