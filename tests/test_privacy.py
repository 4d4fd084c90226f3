import pandas as pd
import pytest

from etl import publish
from etl.privacy import contains_personal_data, mask_personal_data, redact_uri
from etl.publish import TableBatch


@pytest.mark.parametrize(
    "text",
    [
        "Kontakt: anna.svensson@regionuppsala.se",
        "pnr 19800101-1234",
        "811228-9874 ringde",
        "200001019876",
        "samordningsnr 701063-2391",
        # Telephone numbers (issue 22 §5: one typed into an approval reason reached the report).
        "tel 018-611 00 00",
        "ring 070-123 45 67",
        "mobil 073 123 45 67.",
        "+46 70 123 45 67",
        "+46 (0)8-123 456 78",
        "0046 31 12 34 56",
        "tel:08-12345678",
        # Common spellings a reviewer found unmasked: area code in brackets, autocorrect's en dash, dots, a slash,
        # a foreign number, full-width digits; personnummer with a space, an en dash, hyphens, a spaced hyphen;
        # e-mail written "(at)" / "[at]" (and "＠").
        "tel (08) 123 456 78",
        "ring 070–123 45 67",
        "070.123.45.67",
        "fax 08/12345678",
        "+1 (555) 123-4567",
        "mobil ０７０-１２３ ４５ ６７",
        "ring 070 - 123 45 67",
        "070\u2011123\u00a045\u00a067",
        "pnr 19800101 1234",
        "pnr 19800101–1234",
        "pnr 1980-01-01-1234",
        "pnr 800101 - 1234",
        "Kontakt: anna(at)region.se",
        "Kontakt: anna [at] region.se",
        "Kontakt: anna＠region.se",
    ],
)
def test_personal_data_is_masked(text):
    masked = mask_personal_data(text)
    assert not contains_personal_data(masked)
    assert "borttag" in masked and not any(ch.isdigit() for ch in masked.split(" ", 1)[-1])


@pytest.mark.parametrize(
    "text",
    [
        "1 234 567 kr",
        "2017-03-01",
        "SE2321000016-15CX",
        "159 mnkr",
        "6 900 000 kr",
        "1 000 000 000 kr",
        "0,5 mnkr",
        "01-09-2025",
        "751 85 Uppsala",
        "kl 08-17",
        "Dnr 01-234/2017",
        "2017-03;01;Stockholm;12 345",
        "2017-03\t01\t12 345\t0",
        "region 03 2017 1",
        "Gotland 09 2017 12 34 56 78",
        # Dates, amounts, ids, times and versions in every common spelling stay.
        "01/02/2025",
        "01.02.2025",
        "05.31.2025",
        "31.05.25",
        "2017.03.01",
        "2025-01-01T10:00",
        "2025-01-01T10:00:00Z",
        "2025-01-01 10:00:00",
        "01.02.2025 10.00",
        "2017-03-01 – 2017-12-31",
        "2025-01-01 1234 kr",
        "128 944 953",
        "1.234.567",
        "3.14",
        "0.5 mnkr",
        "kl 08.00-17.00",
        "08.00–17.00",
        "org.nr 232100-0016",
        "232100 - 0016",
        "SE2321000016-1234",
        "report_2017-03-01.csv",
        "2017-03-01-1200.csv",
        "export-2017-03-01-1200.csv",
        "v1.2.3",
        "10.0.19045",
        "version 0.12.3",
        "(1) 2017",
        "½ m² ﬁ",
        "１ ２３４ kr",
    ],
)
def test_ordinary_values_are_left_alone(text):
    assert mask_personal_data(text) == text


def test_quarantine_never_holds_personal_data(warehouse):
    rows = pd.DataFrame({"region_code": ["01"], "year": [2016], "population": [1], "source_file": ["a.csv"]})
    q = pd.DataFrame(
        [
            {
                "source_file": "a.csv",
                "row_number": 2,
                "raw": "99;anna@example.se;19800101-1234",
                "reason": "unknown region",
            }
        ]
    )
    publish.publish(str(warehouse), "test", TableBatch("population", rows, q, 2, ("region_code", "year")), "b1")
    for path in warehouse.rglob("*.parquet"):
        text = pd.read_parquet(path).to_csv()
        assert "anna@example.se" not in text and "19800101-1234" not in text
    assert "[e-post borttagen]" in publish.read_quarantine(str(warehouse), "population").column("raw")[0].as_py()


# ---------------------------------------------------------------- credentials in URIs (issue 13 §5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # userinfo, in a bare URI and inside a message; a raw "@" in the password is still covered
        ("http://user:password@host/landing", "http://***@host/landing"),
        ("GET https://user:p@ss@host:8443/api?x=1#f failed", "GET https://***@host:8443/api?x=1#f failed"),
        ("s3://AKIAXXX:wJalrSECRET@bucket/prefix/a.csv", "s3://***@bucket/prefix/a.csv"),
        ("redis://:pw@redis:6379/0", "redis://***@redis:6379/0"),
        # a password typed unencoded: a space, "#" (more shapes in test_redaction_cases.py)
        (
            "landing http://alice:S3c retPW@127.0.0.1:8080/landing, warehouse /wh",
            "landing http://***@127.0.0.1:8080/landing, warehouse /wh",
        ),
        (
            "Invalid URL 'http://alice:S3c#retPW@127.0.0.1:8080/landing'",
            "Invalid URL 'http://***@127.0.0.1:8080/landing'",
        ),
        ("https://ghp_token123@github.com/o/r", "https://***@github.com/o/r"),
        # secret query parameters keep their name, lose their value
        ("https://h/v3/kpi?api_key=123&page=2&per_page=5000", "https://h/v3/kpi?api_key=***&page=2&per_page=5000"),
        ("http://h/x?token=abc", "http://h/x?token=***"),
        ("http://h/x?a=1&password=hunter2&b=2", "http://h/x?a=1&password=***&b=2"),
        ("http://h/x?client_secret=s3&subscription-key=k", "http://h/x?client_secret=***&subscription-key=***"),
        (
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=AbC%3D",
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=***",
        ),
        ("https://h/cb#access_token=eyJhbGci&state=1", "https://h/cb#access_token=***&state=1"),
        ('<a href="http://h/x?a=1&amp;token=abc">', '<a href="http://h/x?a=1&amp;token=***">'),
        # an error body echoing a secret member
        (
            '{"error":"bad request","access_token":"abc\\"x","n":1}',
            '{"error":"bad request","access_token":"***","n":1}',
        ),
    ],
)
def test_redact_uri_removes_credentials(text, expected):
    assert redact_uri(text) == expected
    assert redact_uri(expected) == expected  # idempotent


def test_redact_uri_covers_aws_presigned_urls():
    sigv4 = (
        "https://bucket.s3.eu-north-1.amazonaws.com/landing/a.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Feu-north-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z"
        "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE"
        "&X-Amz-Signature=0123456789abcdef"
    )
    shown = redact_uri(f"cannot read {sigv4}: 403")
    for secret in ("AKIAEXAMPLE", "FwoGZXIvYXdzEXAMPLE", "0123456789abcdef"):
        assert secret not in shown
    assert "X-Amz-Expires=3600" in shown and "bucket.s3.eu-north-1.amazonaws.com/landing/a.csv" in shown
    sigv2 = "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIAEXAMPLE&Expires=1700000000&Signature=vjbyPxybd%2FZ"
    assert redact_uri(sigv2) == "https://b.s3.amazonaws.com/k?AWSAccessKeyId=***&Expires=1700000000&Signature=***"
    gcs = "https://storage.googleapis.com/b/o?X-Goog-Credential=sa%40p.iam&X-Goog-Signature=abcd"
    assert redact_uri(gcs) == "https://storage.googleapis.com/b/o?X-Goog-Credential=***&X-Goog-Signature=***"


@pytest.mark.parametrize(
    "text",
    [
        "http://host/path@x",  # an "@" in the path is not userinfo
        "mail anna@example.se via http://host/x",  # an e-mail address after a URL is not its userinfo
        "see http://host:8080 and mail anna@example.se",  # nor one further on in the text
        "https://api.kolada.se/v3/data/kpi/N00001/year/2020?page=2&per_page=5000",
        "https://api.scb.se/OV0104/v2beta/api/v2/tables/TAB638/data?lang=sv&valueCodes[Tid]=2020&outputFormat=json-stat2",
        "plain text, no URI; a=b",
        "",
    ],
)
def test_redact_uri_leaves_text_without_credentials_alone(text):
    assert redact_uri(text) == text


@pytest.mark.parametrize("value", [None, 3, 2.5, b"http://u:p@h/"])
def test_redact_uri_passes_non_strings_through(value):
    assert redact_uri(value) is value
