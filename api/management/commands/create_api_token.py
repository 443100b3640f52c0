from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken


class Command(BaseCommand):
    help = "Make a personal API token for USERNAME and print it (it is shown this once only)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the token is for, e.g. 'nightly batch'.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}.")
        _, secret = ApiToken.issue(user, name)
        # Only the token on stdout, so a script can capture it: TOKEN=$(manage.py create_api_token …)
        self.stdout.write(secret)
