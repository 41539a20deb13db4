"""The README's "Mapping DynamoDB to Firestore", implemented again in Python from the README's
words alone, to judge ddb2fs by: numbers with decimal.Decimal (the nearest double is Python's
correctly rounded float(Decimal), its text the shortest repr digits laid out as JavaScript
writes numbers), strings exact (U+0000 included), document ids with their escaping and hashing,
reserved field names dead or escaped, and the limits checked before anything is sent.

map_item() gives a Firestore `fields` object, or raises Dead with the reason's gist.
"""
import base64
import decimal
import hashlib
import re

decimal.getcontext().prec = 400
INT64 = (-(1 << 63), (1 << 63) - 1)
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
RESERVED = re.compile(r"__.+__\Z", re.S)
MAX_DEPTH = 20
MAX_NAME = 1500
MAX_PATH = 1500
MAX_VALUE = 1048487
MAX_DOC = 1048576
MAX_FIELDS = 20000
MAX_ID = 1500


class Dead(Exception):
    """The record cannot be replicated; args[0] names the limit or the rule."""


class DoubleText(float):
    """A doubleValue: a float that also knows the text ddb2fs must print for it."""

    def __new__(cls, value):
        self = super().__new__(cls, value)
        self.text = js_number_text(value)
        return self


def js_number_text(x):
    """ECMAScript Number::toString of a finite double: the shortest digits that read back as
    x (Python's repr finds them), laid out as JavaScript does (0.1, 1e+21, 1e-7, 100)."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mant, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exp) if exp else 0)  # value = 0.DIGITS x 10^point, before strip
    point -= len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = digits.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * -n + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") \
            + str(abs(e))
    return sign + out


def parse_number(text):
    """A DynamoDB number text as a Decimal, after DynamoDB's rules (38 significant digits, the
    range 1E-130 to 9.99...E+125); Dead otherwise."""
    if not isinstance(text, str) or not NUMBER.match(text):
        raise Dead("not a number")
    d = decimal.Decimal(text)
    if d == 0:
        return decimal.Decimal(0)
    digits = d.as_tuple().digits
    significant = "".join(map(str, digits)).strip("0")
    if len(significant) > 38:
        raise Dead("more than 38 significant digits")
    if not decimal.Decimal("1E-130") <= abs(d) < decimal.Decimal("1E+126"):
        raise Dead("out of DynamoDB's range")
    return d


def canonical_number(d):
    """A number in canonical decimal form: no exponent, no trailing zeros, -0 is 0."""
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def number_value(text, numbers):
    d = parse_number(text)
    if numbers == "string":
        return {"stringValue": text}
    if d == d.to_integral_value() and INT64[0] <= int(d) <= INT64[1]:
        return {"integerValue": str(int(d))}
    return {"doubleValue": DoubleText(float(d))}


def utf8(s):
    """UTF-8 bytes of a Python string; U+0000 is one byte. Dead when not valid (a lone
    surrogate from JSON's \\ud800)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise Dead("not valid UTF-8")


def b64bytes(text):
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text) \
            or len(text) % 4:
        raise Dead("base64 not well-formed")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise Dead("base64 not well-formed")


def field_name(name, reserved):
    """The name as written: dead mode leaves it (or kills the item), escape mode encodes the
    first character of a reserved name or of one starting with '%'."""
    if name == "":
        raise Dead("empty field name")
    if RESERVED.match(name):
        if reserved == "dead":
            raise Dead("reserved name")
        name = "%5F" + name[1:]
    elif name.startswith("%") and reserved == "escape":
        name = "%25" + name[1:]
    if len(utf8(name)) > MAX_NAME:
        raise Dead("field name over 1,500 bytes")
    return name


class _Walk:
    def __init__(self, numbers, reserved):
        self.numbers, self.reserved, self.fields = numbers, reserved, 0

    def fields_of(self, attrs, depth, path):
        out = {}
        for name, av in attrs.items():
            written = field_name(name, self.reserved)
            p = path + [written]
            if len(utf8(".".join(p))) > MAX_PATH:
                raise Dead("field path over 1,500 bytes")
            self.fields += 1
            out[written] = self.value(av, depth, p)
        return out

    def array(self, members, depth, path):
        return {"arrayValue": {"values": members}}

    def value(self, av, depth, path):
        """av is a DynamoDB AttributeValue; depth the levels around it already."""
        if not isinstance(av, dict) or len(av) != 1:
            raise Dead("attribute value without exactly one type")
        (tag, v), = av.items()
        if tag == "S":
            if len(utf8(v)) > MAX_VALUE:
                raise Dead("value over 1,048,487 bytes")
            return {"stringValue": v}
        if tag == "N":
            return number_value(v, self.numbers)
        if tag == "B":
            if len(b64bytes(v)) > MAX_VALUE:
                raise Dead("value over 1,048,487 bytes")
            return {"bytesValue": v}
        if tag == "BOOL":
            return {"booleanValue": v}
        if tag == "NULL":
            return {"nullValue": None}
        if tag == "M":
            if depth + 1 > MAX_DEPTH:
                raise Dead("nesting over 20")
            return {"mapValue": {"fields": self.fields_of(v, depth + 1, path)}}
        if tag in ("SS", "NS", "BS"):
            if v and depth + 1 > MAX_DEPTH:
                raise Dead("nesting over 20")
            return self.array(self.set_members(tag, v), depth, path)
        if tag == "L":
            if v and depth + 1 > MAX_DEPTH:
                raise Dead("nesting over 20")
            members = []
            for m in v:
                if isinstance(m, dict) and len(m) == 1 and next(iter(m)) in ("L", "SS", "NS",
                                                                             "BS"):
                    # an array directly in an array: wrapped in a map of one field "values"
                    if depth + 2 > MAX_DEPTH:
                        raise Dead("nesting over 20")
                    inner = self.value(m, depth + 2, path + ["values"])
                    members.append({"mapValue": {"fields": {"values": inner}}})
                else:
                    members.append(self.value(m, depth + 1, path))
            return self.array(members, depth, path)
        raise Dead("unknown type %s" % tag)

    def set_members(self, tag, v):
        if tag == "SS":
            for s in v:
                if len(utf8(s)) > MAX_VALUE:
                    raise Dead("value over 1,048,487 bytes")
            return [{"stringValue": s} for s in sorted(v, key=utf8)]
        if tag == "NS":
            parsed = sorted(((parse_number(t), t) for t in v), key=lambda p: p[0])
            return [number_value(t, self.numbers) for _, t in parsed]
        return [{"bytesValue": t} for t in sorted(v, key=b64bytes)]


def value_size(v):
    """Firestore's storage size of a Value."""
    (tag, x), = v.items()
    if tag == "stringValue":
        return len(utf8(x)) + 1
    if tag == "bytesValue":
        return len(base64.b64decode(x))
    if tag in ("integerValue", "doubleValue"):
        return 8
    if tag in ("booleanValue", "nullValue"):
        return 1
    if tag == "mapValue":
        return fields_size(x.get("fields", {}))
    return sum(value_size(m) for m in x.get("values", []))


def fields_size(fields):
    return sum(len(utf8(n)) + 1 + value_size(v) for n, v in fields.items())


def map_item(image, numbers="auto", reserved="dead"):
    """A DynamoDB item (NewImage, or a Scan item) as the Firestore fields ddb2fs must write."""
    walk = _Walk(numbers, reserved)
    fields = walk.fields_of(image, 0, [])
    if walk.fields > MAX_FIELDS:
        raise Dead("more than 20,000 fields")
    return fields


def escape_part(s, escape_chars):
    out = []
    for ch in s:
        if ch in "%/" or ch in escape_chars:
            out.append("".join("%%%02X" % b for b in utf8(ch)))
        else:
            out.append(ch)
    return "".join(out)


def escape_whole(s):
    if s == ".":
        return "%2E"
    if s == "..":
        return "%2E%2E"
    if RESERVED.match(s):
        return "%5F" + s[1:]
    return s


def key_text(av):
    """A key attribute's text in an id: strings as they are, numbers canonical, binaries as
    unpadded base64url."""
    if not isinstance(av, dict) or len(av) != 1:
        raise Dead("key attribute without exactly one type")
    (tag, v), = av.items()
    if tag == "S":
        if v == "":
            raise Dead("key attribute is an empty string")
        return v
    if tag == "N":
        return canonical_number(parse_number(v))
    if tag == "B":
        b = b64bytes(v)
        if not b:
            raise Dead("key attribute is empty")
        return base64.urlsafe_b64encode(b).decode().rstrip("=")
    raise Dead("key attribute of type %s" % tag)


def document_id(keys, partition, sort=None, separator="#"):
    """The document id of an item's key attributes (a dict name -> AttributeValue)."""
    if sort is None:
        doc = escape_part(key_text(keys[partition]), "")
    else:
        doc = (escape_part(key_text(keys[partition]), separator) + separator
               + escape_part(key_text(keys[sort]), separator))
    doc = escape_whole(doc)
    if len(utf8(doc)) > MAX_ID:
        return "%sha256%" + hashlib.sha256(utf8(doc)).hexdigest()
    return doc


def collection_of(table, collections=None):
    """The collection: a configured one as given, else the table name escaped as an id."""
    if collections and table in collections:
        return collections[table]
    doc = escape_whole(escape_part(table, ""))
    if len(utf8(doc)) > MAX_ID:
        return "%sha256%" + hashlib.sha256(utf8(doc)).hexdigest()
    return doc


def document_name(project, database, collection, doc_id):
    return "projects/%s/databases/%s/documents/%s/%s" % (project, database, collection, doc_id)


def check_document_size(collection, doc_id, fields):
    """Firestore's document size: the name's segments (+1 each, plus 16), the fields, plus 32."""
    name = sum(len(utf8(seg)) + 1 for seg in (collection + "/" + doc_id).split("/")) + 16
    if name + fields_size(fields) + 32 > MAX_DOC:
        raise Dead("document over 1 MiB")


def plain(v):
    """A Firestore Value (or fields object) reduced to what it means, for comparing one read
    back from a server: bytes decoded, empty maps and arrays in one form, doubles as floats
    tagged apart from integers (types strict)."""
    if isinstance(v, dict) and len(v) == 1 and next(iter(v)).endswith("Value"):
        (tag, x), = v.items()
        if tag == "mapValue":
            return ("map", plain_fields(x.get("fields", {})))
        if tag == "arrayValue":
            return ("array", tuple(plain(m) for m in x.get("values", [])))
        if tag == "bytesValue":
            t = x.rstrip("=").replace("-", "+").replace("_", "/")  # as proto3 JSON reads it
            return ("bytes", base64.b64decode(t + "=" * (-len(t) % 4)))
        if tag == "doubleValue":
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                return ("double?", x)
            return ("double", float(x), repr(float(x)))  # repr tells 0.0 from -0.0
        if tag == "integerValue":
            return ("integer", str(x))
        return (tag, x)
    raise ValueError("not a Firestore Value: %r" % (v,))


def plain_fields(fields):
    return {n: plain(v) for n, v in fields.items()}


def table_of(arn):
    """The table name in a stream's ARN (arn:aws:dynamodb:R:A:table/NAME/stream/...)."""
    m = re.match(r"arn:aws[a-z-]*:dynamodb:[^:]*:[^:]*:table/([^/]+)/stream/", arn or "")
    if not m:
        raise Dead("no table in eventSourceARN")
    return m.group(1)


def parse_settings(env):
    """The settings of the README's Configuration table that the mapping reads."""
    keys = {}
    for part in filter(None, env.get("DDB2FS_KEYS", "").split(";")):
        table, _, attrs = part.partition("=")
        names = attrs.split(",")
        keys[table] = (names[0], names[1] if len(names) > 1 else None)
    collections = dict(p.partition("=")[::2]
                       for p in filter(None, env.get("DDB2FS_COLLECTIONS", "").split(";")))
    return {"keys": keys, "collections": collections,
            "separator": env.get("DDB2FS_KEY_SEPARATOR", "#"),
            "numbers": env.get("DDB2FS_NUMBERS", "auto"),
            "ttl": env.get("DDB2FS_TTL_DELETES", "delete"),
            "reserved": env.get("DDB2FS_RESERVED_NAMES", "dead"),
            "project": env.get("GOOGLE_CLOUD_PROJECT", "-"),
            "database": env.get("DDB2FS_DATABASE", "(default)")}


def convert_record(rec, s):
    """What one stream record must become, as `ddb2fs convert` would print it: {"update": {name,
    fields}}, {"delete": name}, {"skip": collection/id}, or {"error": gist}."""
    try:
        table = table_of(rec.get("eventSourceARN"))
        d = rec.get("dynamodb") or {}
        keys = d.get("Keys")
        if not isinstance(keys, dict) or not keys:
            raise Dead("no Keys")
        schema = s["keys"].get(table)
        if schema is None:
            if len(keys) != 1:
                raise Dead("no key schema")
            schema = (next(iter(keys)), None)
        pk, sk = schema
        for k in filter(None, schema):
            if k not in keys:
                raise Dead("key attribute missing")
        collection = collection_of(table, s["collections"])
        doc_id = document_id(keys, pk, sk, s["separator"])
        name = document_name(s["project"], s["database"], collection, doc_id)
        event = rec.get("eventName")
        if event == "REMOVE":
            ident = rec.get("userIdentity") or {}
            if (ident.get("type"), ident.get("principalId")) == ("Service",
                                                               "dynamodb.amazonaws.com") \
                    and s["ttl"] == "ignore":
                return {"skip": collection + "/" + doc_id}
            return {"delete": name}
        if event not in ("INSERT", "MODIFY"):
            raise Dead("unknown eventName")
        image = d.get("NewImage")
        if not isinstance(image, dict):
            raise Dead("no NewImage")
        fields = map_item(image, s["numbers"], s["reserved"])
        check_document_size(collection, doc_id, fields)
        return {"update": {"name": name, "fields": fields}}
    except Dead as e:
        return {"error": e.args[0]}


def convert_lines(event, env):
    """What `ddb2fs convert` must print for an event (its JSON text, or the object) under the
    settings env, one JSON line per record, as mapping_ref derives it: the expected writes of
    a test, computed without the code under test."""
    import json
    if isinstance(event, (str, bytes)):
        event = json.loads(event)
    s = parse_settings(env)
    return [json.dumps(convert_record(r, s)) for r in event["Records"]]
