"""A real directory for the sign-in tests: Debian's OpenLDAP ``slapd``, started and loaded by a fixture.

The agency signs in through its directory; the tests do the same against a
slapd of their own (``ldap://127.0.0.1:<free port>``, a scratch database in
the pytest temporary folder), loaded with the people and groups below:

=========  =========================================  ===============================
uid        groups (``cn=…,ou=groups,dc=agency,dc=se``)  role in Airflow (deploy/webserver_config.py)
=========  =========================================  ===============================
``ana``    airflow-analysts                           Viewer (analyst)
``erik``   airflow-engineers                          User (engineer)
``sara``   airflow-stewards                           Steward (data steward)
``sven``   airflow-engineers, airflow-stewards        User + Steward
``adam``   airflow-admins                             Admin
``olle``   none                                       Public: no access
=========  =========================================  ===============================

Group membership reaches Airflow as the users' ``memberOf`` attribute
(slapd's memberof overlay, as Active Directory has it), so the entries are
added over LDAP after slapd starts: ``slapadd`` would bypass the overlay.

Fixture ``directory`` (session): installs ``slapd`` and ``ldap-utils`` with
apt-get when missing, and python-ldap (``requirements-ldap.txt``, which
compiles against ``libldap2-dev``/``libsasl2-dev``) into the test
environment when it cannot be imported — as the Docker image does. Skips
with the reason when that cannot be done, and fails instead under
``ETL_REQUIRE_SERVICES=1`` (.ci/run).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import debian_support
from tests.debian_support import unavailable

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = "dc=agency,dc=se"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
BIND_DN = f"cn=airflow-bind,{SUFFIX}"  # the read-only service account Airflow searches with
GROUP_MEMBERS = {
    "airflow-analysts": ("ana",),
    "airflow-engineers": ("erik", "sven"),
    "airflow-stewards": ("sara", "sven"),
    "airflow-admins": ("adam",),
}
PEOPLE_NAMES = {
    "ana": ("Ana", "Analytiker"),
    "erik": ("Erik", "Ingenjör"),
    "sara": ("Sara", "Förvaltare"),
    "sven": ("Sven", "Dubbelroll"),
    "adam": ("Adam", "Administratör"),
    "olle": ("Olle", "Utan Grupp"),
}
SLAPD = "/usr/sbin/slapd"
APT_PACKAGES = ("slapd", "ldap-utils", "libldap2-dev", "libsasl2-dev")


@dataclass
class Directory:
    """A running slapd: its URL, the service account, and each test user's password."""

    url: str
    bind_dn: str
    bind_password: str
    passwords: dict[str, str] = field(default_factory=dict)

    def group_dn(self, group: str) -> str:
        return f"cn={group},{GROUPS}"

    def airflow_env(self) -> dict[str, str]:
        """The environment deploy/webserver_config.py reads (docs/deployment.md, "Sign-in and roles")."""
        return {
            "ETL_LDAP_URL": self.url,
            "ETL_LDAP_BIND_DN": self.bind_dn,
            "ETL_LDAP_BIND_PASSWORD": self.bind_password,
            "ETL_LDAP_USER_BASE": PEOPLE,
            "ETL_LDAP_GROUP_ANALYSTS": self.group_dn("airflow-analysts"),
            "ETL_LDAP_GROUP_ENGINEERS": self.group_dn("airflow-engineers"),
            "ETL_LDAP_GROUP_STEWARDS": self.group_dn("airflow-stewards"),
            "ETL_LDAP_GROUP_ADMINS": self.group_dn("airflow-admins"),
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _python_ldap() -> str | None:
    """python-ldap importable in this environment, installed from requirements-ldap.txt if need be."""
    try:
        import ldap  # noqa: F401
    except ImportError:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "-r",
                str(ROOT / "requirements-ldap.txt"),
                "-c",
                str(ROOT / "constraints.txt"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            return f"pip could not install python-ldap: {(done.stderr or done.stdout).strip()[-500:]}"
    return None


def _config(base: Path, root_password: str) -> Path:
    (base / "db").mkdir()
    config = base / "slapd.conf"
    config.write_text(f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {base}/slapd.pid
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw {root_password}
directory {base}/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint true
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="{BIND_DN}" read by self read by * none
""")
    return config


def _ldif(directory: Directory) -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: agency\no: Myndigheten\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: {BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: airflow-bind\nuserPassword: {directory.bind_password}\n",
    ]
    for uid, (given, surname) in PEOPLE_NAMES.items():
        entries.append(
            f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {surname}\n"
            f"givenName: {given}\nsn: {surname}\nmail: {uid}@agency.example\n"
            f"userPassword: {directory.passwords[uid]}\n"
        )
    for group, members in GROUP_MEMBERS.items():
        lines = "".join(f"member: uid={uid},{PEOPLE}\n" for uid in members)
        entries.append(f"dn: cn={group},{GROUPS}\nobjectClass: groupOfNames\ncn: {group}\n{lines}")
    return "\n".join(entries)


@pytest.fixture(scope="session")
def directory(tmp_path_factory):
    """slapd on a free 127.0.0.1 port, loaded with the test people and groups; stopped at the end."""
    reason = debian_support.install(APT_PACKAGES, (SLAPD, "ldapadd"))
    if reason:
        unavailable(f"no OpenLDAP for the sign-in tests: {reason}")
    reason = _python_ldap()
    if reason:
        unavailable(f"no python-ldap for the sign-in tests: {reason}")
    base = tmp_path_factory.mktemp("slapd")
    root_password = secrets.token_urlsafe(16)
    port = _free_port()
    found = Directory(
        url=f"ldap://127.0.0.1:{port}",
        bind_dn=BIND_DN,
        bind_password=secrets.token_urlsafe(16),
        passwords={uid: secrets.token_urlsafe(12) for uid in PEOPLE_NAMES},
    )
    config = _config(base, root_password)
    log = open(base / "slapd.log", "wb")
    # -d 0: stay in the foreground (the fixture owns the process) and log nothing but errors.
    server = subprocess.Popen(
        [SLAPD, "-f", str(config), "-h", f"{found.url}/", "-d", "0"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"slapd did not start: {(base / 'slapd.log').read_text(errors='replace')[-2000:]}", pytrace=False
                )
            time.sleep(0.1)
        added = subprocess.run(
            ["ldapadd", "-x", "-H", found.url, "-D", f"cn=admin,{SUFFIX}", "-w", root_password],
            input=_ldif(found),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        yield found
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(base / "db", ignore_errors=True)
