from django import forms

from api import webhooks
from api.models import Webhook


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What uses it, so you know which to revoke: “nightly batch”, “chat bot”."
    )


class WebhookForm(forms.ModelForm):
    url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        label="Receiver address (https://…)",
        # A text box the stylesheet already styles; the keyboard still offers URL keys.
        widget=forms.TextInput(attrs={"inputmode": "url", "placeholder": "https://bots.example.com/soraweb"}),
    )

    class Meta:
        model = Webhook
        fields = ["url", "scope"]
        labels = {"scope": "Which jobs"}
        widgets = {"scope": forms.RadioSelect}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        if not user.is_staff:
            # Only staff may hear about every job in the studio.
            self.fields["scope"].choices = [(Webhook.Scope.OWN, Webhook.Scope.OWN.label)]

    def clean_url(self):
        url = self.cleaned_data["url"]
        webhooks.check_url(url)
        return url
