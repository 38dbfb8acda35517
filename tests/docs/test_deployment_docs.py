"""The nginx configuration in docs/deployment.md parses with nginx itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.servers import missing

DOC = Path(__file__).parents[2] / "docs" / "deployment.md"


def test_documented_nginx_config_is_valid(tmp_path: Path) -> None:
    nginx, openssl = shutil.which("nginx"), shutil.which("openssl")
    if nginx is None or openssl is None:
        missing("nginx and openssl are needed: apt-get install nginx openssl")
    assert nginx and openssl
    blocks = re.findall(r"```nginx\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/deployment.md has one nginx block"
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=chat.example.org",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    site = (
        blocks[0]
        .replace("/etc/ssl/chat.example.org.pem", str(certificate))
        .replace("/etc/ssl/chat.example.org.key", str(key))
    )
    (tmp_path / "logs").mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        "events {}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path}/body;\n{site}\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
