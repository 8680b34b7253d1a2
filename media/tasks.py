"""Celery tasks of the media role (queue `media`)."""

import logging

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings

from .worker import AtCapacity, HostConfig, get_host

logger = logging.getLogger(__name__)


def host_config() -> HostConfig:
    low, _, high = settings.MEDIA_RTP_PORTS.partition("-")
    return HostConfig(
        redis_url=settings.REDIS_URL,
        max_sessions=settings.MEDIA_MAX_SESSIONS,
        rtp_host=settings.MEDIA_RTP_HOST,
        rtp_advertised_host=settings.MEDIA_RTP_ADVERTISED_HOST or None,
        rtp_port_min=int(low),
        rtp_port_max=int(high),
        ice_host_addresses=settings.MEDIA_ICE_HOST_ADDRESSES or None,
        ice_servers=settings.MEDIA_ICE_SERVERS,
    )


@shared_task(bind=True, acks_late=True, ignore_result=True, queue="media")
def start_session(self: object, session_id: str, prefer_opus: bool = False) -> None:
    """Start a media session on this worker process; it lives on after the task returns.

    Idempotent per session id. A process at capacity gives the task back to the queue, for
    another worker process to take.
    """
    host = get_host(host_config)
    if session_id in host.sessions:
        return
    try:
        host.start_session(session_id, prefer_opus=prefer_opus)
    except AtCapacity as exc:
        logger.info("media session %s refused here: %s", session_id, exc)
        raise Reject(str(exc), requeue=True) from None
