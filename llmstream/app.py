"""The application factory: `create_app(settings)`."""

from __future__ import annotations

from quart import Quart, render_template

from llmstream import __version__, request_ids
from llmstream.api import (
    anthropic_api,
    apidocs,
    demos,
    fault_metrics,
    native_api,
    openai_api,
    ops,
    pages,
    relay,
    stream_lane,
)
from llmstream.api.errors import install_error_handlers
from llmstream.config import Settings, load_settings
from llmstream.hub import StreamHub
from llmstream.resources import ui_dir
from llmstream.sse_response import StreamingQuart, install
from llmstream.streaming import StreamOptions


def create_app(settings: Settings | None = None) -> Quart:
    """Build the app: streaming engine, ops routes, demos and the browser UI."""
    settings = settings or load_settings()
    app = StreamingQuart(
        __name__,
        template_folder=str(ui_dir("templates")),
        static_folder=str(ui_dir("static")),
        static_url_path="/static",
    )
    request_ids.install(app)  # first: every later hook and handler has the request's id
    app.config["LLMSTREAM_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes  # larger bodies: 413, in the API's shape
    hub = StreamHub(
        max_streams=settings.max_streams,
        max_lateness=settings.max_lateness,
        options=StreamOptions(
            heartbeat=settings.heartbeat,
            write_timeout=settings.write_timeout,
            max_duration=settings.max_duration,
            retry_ms=settings.retry_ms,
        ),
    )
    install(app, hub)
    fault_metrics.install(app, hub.metrics.registry)
    install_error_handlers(app)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(demos.blueprint)
    app.register_blueprint(relay.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(native_api.blueprint)
    app.register_blueprint(openai_api.blueprint)
    app.register_blueprint(anthropic_api.blueprint)
    app.register_blueprint(apidocs.blueprint)
    stream_lane.install(app, (native_api.LANE, openai_api.LANE, anthropic_api.LANE))

    @app.get("/")
    async def index() -> str:
        return await render_template("index.html", version=__version__)

    return app
