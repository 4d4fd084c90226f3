"""Sign-in for production: the FAB auth manager against the agency's LDAP directory, groups mapped to roles.

Read by Airflow's FAB auth manager (``[fab] config_file``; the Docker image
puts it at ``/opt/airflow/webserver_config.py``, Airflow's default place) in
the API server. Everything site-specific comes from the environment, so the
same file serves compose, the tests and a real deployment
(docs/deployment.md, "Sign-in and roles"):

==============================  ===================================================
``ETL_LDAP_URL``                ``ldaps://ldap.agency.se`` (``ldap://`` only on a
                                trusted network: passwords cross it)
``ETL_LDAP_BIND_DN``            a read-only service account that searches for users
``ETL_LDAP_BIND_PASSWORD``      its password (a secret: from .env / the secret store)
``ETL_LDAP_USER_BASE``          where people are, e.g. ``ou=people,dc=agency,dc=se``
``ETL_LDAP_UID_FIELD``          the sign-in name's attribute (``uid``; AD: ``sAMAccountName``)
``ETL_LDAP_GROUP_ANALYSTS``     group DN → Viewer + DataQuality: read DAGs, runs, logs,
                                the data-quality pages and the report; no trigger
``ETL_LDAP_GROUP_ENGINEERS``    group DN → User + DataQuality: trigger, clear, backfill, mark
``ETL_LDAP_GROUP_STEWARDS``     group DN → Viewer + DataQuality + Steward: approve or
                                reject blocked deliveries (``approve_blocked_delivery``)
``ETL_LDAP_GROUP_ADMINS``       group DN → Admin: Variables, Connections, pools, users
``ETL_LOGIN_RATE_LIMIT``        sign-in attempts per client address (default FAB's
                                ``5 per 40 second``; raise it behind a proxy that
                                makes every user one address)
==============================  ===================================================

Roles follow the directory at every sign-in (``AUTH_ROLES_SYNC_AT_LOGIN``):
removing someone from a group takes the role away at their next sign-in, and
a person in no mapped group signs in to nothing (role Public, no permissions).
The roles Steward and DataQuality are created by ``scripts/airflow_init.py`` (compose's
airflow-init); who may answer an approval is decided by
``etl.auth_manager.AgencyFabAuthManager``.
"""

import os

from flask_appbuilder.const import AUTH_LDAP

from etl.auth_manager import DirectorySecurityManager

# One Airflow user per directory account, whatever case or spaces the sign-in name is typed with.
SECURITY_MANAGER_CLASS = DirectorySecurityManager

AUTH_TYPE = AUTH_LDAP
AUTH_LDAP_SERVER = os.environ["ETL_LDAP_URL"]
AUTH_LDAP_USE_TLS = False  # STARTTLS; prefer an ldaps:// URL
AUTH_LDAP_BIND_USER = os.environ["ETL_LDAP_BIND_DN"]
# Only the API server signs people in and has the password (docker-compose.yml); other components load this
# file for FAB's roles and permissions and never bind.
AUTH_LDAP_BIND_PASSWORD = os.environ.get("ETL_LDAP_BIND_PASSWORD", "")
AUTH_LDAP_SEARCH = os.environ["ETL_LDAP_USER_BASE"]
AUTH_LDAP_UID_FIELD = os.environ.get("ETL_LDAP_UID_FIELD", "uid")
AUTH_LDAP_FIRSTNAME_FIELD = "givenName"
AUTH_LDAP_LASTNAME_FIELD = "sn"
AUTH_LDAP_EMAIL_FIELD = "mail"
AUTH_LDAP_GROUP_FIELD = "memberOf"

# A person is created in Airflow at their first sign-in, with the roles their groups map to.
AUTH_USER_REGISTRATION = True
AUTH_USER_REGISTRATION_ROLE = "Public"
AUTH_ROLES_SYNC_AT_LOGIN = True
# DataQuality lets a role list the plugins, which the UI needs to show the data-quality pages in its navigation
# (Viewer and User lack it); Steward lets a role answer approval requests. Both are made by scripts/airflow_init.py.
AUTH_ROLES_MAPPING = {
    os.environ["ETL_LDAP_GROUP_ANALYSTS"]: ["Viewer", "DataQuality"],
    os.environ["ETL_LDAP_GROUP_ENGINEERS"]: ["User", "DataQuality"],
    os.environ["ETL_LDAP_GROUP_STEWARDS"]: ["Viewer", "DataQuality", "Steward"],
    os.environ["ETL_LDAP_GROUP_ADMINS"]: ["Admin"],
}
# Public is the role of nobody-in-particular: it grants nothing.
AUTH_ROLE_PUBLIC = None
WTF_CSRF_ENABLED = True
# Password guessing against the directory through Airflow is slowed per client address.
AUTH_RATE_LIMITED = True
AUTH_RATE_LIMIT = os.environ.get("ETL_LOGIN_RATE_LIMIT", "5 per 40 second")
# The browser session; the UI's and API's token lasts [api_auth] jwt_expiration_time, which compose sets to the
# same 8 hours (Airflow's default is 24). A token is not revoked by signing out: it lapses.
PERMANENT_SESSION_LIFETIME = 8 * 3600  # seconds: a working day, then sign in again
