from celery import shared_task

from api import webhooks
from api.models import IdempotencyKey, WebhookDelivery


@shared_task
def webhook_sweep():
    """Queue events for jobs that finished, then hand out the deliveries whose turn has come (beat)."""
    webhooks.queue_finished()
    IdempotencyKey.forget_expired()
    for pk, token in WebhookDelivery.lease_due():
        send_delivery.delay(pk, token)


@shared_task
def send_delivery(pk, token):
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=pk).first()
    if delivery is None or not delivery.take_lease(token):
        return
    webhooks.deliver(delivery)
