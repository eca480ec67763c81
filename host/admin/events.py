"""``GET /events`` on the admin site: the live event stream of :mod:`host.event_sse`, mounted
behind the same bearer token as every admin route."""

from host.admin.api import mount
from host.event_sse import stream_for

mount("/events", stream_for)
