"""`composer studio`: serve the web page."""

from __future__ import annotations

import click

from composer.cli_support import handle_errors


@click.command("studio")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0 opens it to the network).")
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--out", "out_dir", type=click.Path(), default="studio", show_default=True,
              help="Output folder: every render, the history, uploads; nothing is written elsewhere.")
@click.option("--model", "model_dir", type=click.Path(), help="Diffusion checkpoint (default: bundled).")
@click.option("--codec", "codec_dir", type=click.Path(), help="Codec checkpoint (default: bundled).")
@click.option("--steps", type=int, help="Sampler steps (default: the render default, 8).")
@handle_errors
def studio_cmd(host, port, out_dir, model_dir, codec_dir, steps):
    """A web page for writing, rendering and editing songs (needs `pip install .[ui]`)."""
    import importlib.util

    from composer.errors import InputError

    if importlib.util.find_spec("gradio") is None:
        raise InputError("studio: Gradio is not installed; `pip install .[ui]` (or `make studio`)")
    if not 1 <= port <= 65535:
        raise InputError(f"--port: {port} is outside 1..65535")
    if steps is not None and not 1 <= steps <= 1000:
        raise InputError(f"--steps: {steps} is outside 1..1000")
    _check_port(host, port)
    from composer.studio.session import Studio, keep_files_inside

    studio = Studio(out_dir, codec=codec_dir, model=model_dir)
    keep_files_inside(studio)  # before Gradio is imported: it picks its folders at import
    from composer.studio.app import launch

    studio.models  # load (and check) the models before the page opens  # noqa: B018
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"studio: listening on {host}: anyone who can reach this machine can use it", err=True)
    click.echo(f"studio: http://{host}:{port}/ (writing into {studio.out}); Ctrl+C stops it", err=True)
    launch(studio, host=host, port=port, steps=steps)


def _check_port(host: str, port: int) -> None:
    """Refuse a port something already listens on, before the models are loaded."""
    import socket

    from composer.errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise InputError(f"--host {host}: {error.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed one's
        try:  # lingering connections do not count, a listener does
            probe.bind(address)
        except OSError as error:
            import errno

            if error.errno == errno.EADDRNOTAVAIL:  # the host is not this machine's: the port is not at fault
                raise InputError(f"--host {host}: not an address of this machine ({error.strerror}); "
                                 "127.0.0.1 serves this machine, 0.0.0.0 every network") from None
            raise InputError(f"--port {port}: cannot listen on {host} ({error.strerror}; another studio? "
                             f"choose another with --port)") from None
