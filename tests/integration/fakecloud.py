#!/usr/bin/python3
"""A recording stand-in for the 'aws' and 'docker' commands, for the tests of tools/deploy.

Installed on PATH under both names (it looks at the name it is called by). Every call is
appended to $FAKE_LOG as a JSON line; the cloud it pretends to be lives in $FAKE_STATE (JSON):
tables with their streams, secrets, stacks, images built and pushed. It answers the calls
tools/deploy makes as the AWS CLI v2 does: JSON, or with --output text the same tab-separated
form, after --query (JMESPath); errors on stderr with exit status 254 (aws) or 1 (docker).
"""
import base64
import hashlib
import json
import os
import sys

import jmespath

ACCOUNT = "123456789012"


def load():
    with open(os.environ["FAKE_STATE"]) as f:
        return json.load(f)


def save(state):
    with open(os.environ["FAKE_STATE"], "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)


def log(tool, argv, **more):
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(json.dumps(dict({"tool": tool, "argv": argv}, **more)) + "\n")


def fail(message, code=254):
    sys.stderr.write(message + "\n")
    sys.exit(code)


def text(value):
    """The AWS CLI's text output."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        if value and all(isinstance(v, list) for v in value):
            return "\n".join(text(v) for v in value)
        return "\t".join(text(v) for v in value)
    if isinstance(value, dict):
        return "\t".join(text(v) for v in value.values())
    return str(value)


def options(args):
    """--name value pairs (a repeated or list option keeps every value) and flags."""
    opts, i = {}, 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            fail("unexpected argument %r" % a, 252)
        values = []
        while i + 1 < len(args) and not args[i + 1].startswith("--"):
            values.append(args[i + 1])
            i += 1
        opts[a[2:]] = values if len(values) != 1 else values[0]
        if not values:
            opts[a[2:]] = True
        i += 1
    return opts


def table_view(t, name):
    view = {"TableName": name, "TableStatus": "ACTIVE",
            "KeySchema": [{"AttributeName": t["pk"], "KeyType": "HASH"}] +
                         ([{"AttributeName": t["sk"], "KeyType": "RANGE"}] if t.get("sk") else [])}
    if t.get("stream"):
        view["StreamSpecification"] = {"StreamEnabled": t["stream"]["enabled"]}
        if t["stream"]["enabled"]:
            view["StreamSpecification"]["StreamViewType"] = t["stream"]["view"]
        view["LatestStreamArn"] = t["stream"]["arn"]
    return view


def aws(argv, state):
    service, op = argv[0], argv[1]
    # wait WAITER --options; lambda invoke --options OUTFILE
    opts = options(argv[3:] if op == "wait" else argv[2:-1] if (service, op) == (
        "lambda", "invoke") else argv[2:])
    region = opts.get("region") or os.environ.get("AWS_REGION") or os.environ["AWS_DEFAULT_REGION"]
    out = None
    if (service, op) == ("sts", "get-caller-identity"):
        out = {"Account": ACCOUNT, "UserId": "AIDAFAKE", "Arn": "arn:aws:iam::%s:user/ops" % ACCOUNT}
    elif service == "dynamodb":
        name = opts["table-name"]
        t = state["tables"].get(name)
        if t is None:
            fail("An error occurred (ResourceNotFoundException) when calling the %s operation: "
                 "Requested resource not found: Table: %s not found" % (op, name))
        if op == "describe-table":
            out = {"Table": table_view(t, name)}
        elif op == "update-table":
            spec = dict(kv.split("=") for kv in opts["stream-specification"].split(","))
            if spec["StreamEnabled"] == "true":
                if t.get("stream", {}).get("enabled"):
                    fail("An error occurred (ValidationException): Table already has an enabled "
                         "stream")
                state["stream_counter"] = state.get("stream_counter", 0) + 1
                t["stream"] = {"enabled": True, "view": spec["StreamViewType"],
                               "arn": "arn:aws:dynamodb:%s:%s:table/%s/stream/2026-11-24T00:00:%02d.000"
                                      % (region, ACCOUNT, name, state["stream_counter"])}
            else:
                if not t.get("stream", {}).get("enabled"):
                    fail("An error occurred (ValidationException): Table has no stream to disable")
                t["stream"]["enabled"] = False
            out = {"TableDescription": table_view(t, name)}
        elif op == "wait":
            out = None
        else:
            fail("fake aws: dynamodb %s is not simulated" % op, 252)
    elif service == "secretsmanager":
        if op == "describe-secret":
            s = find_secret(state, opts["secret-id"])
            if s is None:
                fail("An error occurred (ResourceNotFoundException) when calling the "
                     "DescribeSecret operation: Secrets Manager can't find the specified secret.")
            out = {"ARN": s["arn"], "Name": s["name"]}
        elif op in ("create-secret", "put-secret-value"):
            value = opts["secret-string"]
            if not value.startswith("file://"):
                fail("fake aws: the secret value was given on the command line", 252)
            with open(value[7:]) as f:
                value = f.read().strip()
            if len(base64.b64decode(value, validate=True)) != 32:
                fail("fake aws: the secret is not a 32-byte data key", 252)
            if op == "create-secret":
                name = opts["name"]
                if find_secret(state, name):
                    fail("An error occurred (ResourceExistsException)")
                arn = "arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf" % (region, ACCOUNT, name)
                state["secrets"][arn] = {"arn": arn, "name": name, "value": value,
                                         "tags": opts.get("tags")}
            else:
                s = find_secret(state, opts["secret-id"])
                s["value"] = value
                arn = s["arn"]
            out = {"ARN": arn, "VersionId": "v1"}
        elif op == "delete-secret":
            s = find_secret(state, opts["secret-id"])
            if s is None:
                fail("An error occurred (ResourceNotFoundException)")
            del state["secrets"][s["arn"]]
            out = {"ARN": s["arn"]}
        else:
            fail("fake aws: secretsmanager %s is not simulated" % op, 252)
    elif service == "cloudformation":
        name = opts["stack-name"]
        stack = state["stacks"].get(name)
        if op == "deploy":
            with open(opts["template-file"]) as f:
                template = json.load(f)
            overrides = opts.get("parameter-overrides") or []
            if isinstance(overrides, str):
                overrides = [overrides]
            params = dict(stack["parameters"]) if stack else {}
            for kv in overrides:
                k, _, v = kv.partition("=")
                if k not in template["Parameters"]:
                    fail("An error occurred (ValidationError): Parameters: [%s] do not exist in "
                         "the template" % k)
                params[k] = v
            for k, p in template["Parameters"].items():
                params.setdefault(k, str(p["Default"]) if "Default" in p else None)
                if params[k] is None:
                    fail("An error occurred (ValidationError): Parameters: [%s] must have values"
                         % k)
            if "CAPABILITY_IAM" not in (opts.get("capabilities") or ""):
                fail("An error occurred (InsufficientCapabilitiesException)")
            app = params["AppName"]
            outputs = {"RepositoryUri": "%s.dkr.ecr.%s.amazonaws.com/%s" % (ACCOUNT, region, app),
                       "TableName": params["TableName"],
                       "StreamEnabledByDeploy": params["StreamEnabledByDeploy"],
                       "FunctionRoleArn": "arn:aws:iam::%s:role/%s-FunctionRole-FAKE0123"
                                          % (ACCOUNT, name),
                       "FileSystemId": "fs-0fake"}
            if params["Credentials"] == "sealed-key":  # the output's condition
                outputs["DataKeySecretArn"] = params["DataKeySecretArn"]
            if params.get("ImageUri"):
                if params["ImageUri"] not in state["pushed"]:
                    fail("An error occurred: Source image %s does not exist" % params["ImageUri"])
                outputs["FunctionName"] = app
            state["stacks"][name] = {"parameters": params, "outputs": outputs}
        elif op == "describe-stacks":
            if stack is None:
                fail("An error occurred (ValidationError) when calling the DescribeStacks "
                     "operation: Stack with id %s does not exist" % name)
            out = {"Stacks": [{"StackName": name, "StackStatus": "UPDATE_COMPLETE",
                               "Parameters": [{"ParameterKey": k, "ParameterValue": v}
                                              for k, v in stack["parameters"].items()],
                               "Outputs": [{"OutputKey": k, "OutputValue": v}
                                           for k, v in stack["outputs"].items()]}]}
        elif op == "delete-stack":
            state["stacks"].pop(name, None)
            repo = "%s.dkr.ecr.%s.amazonaws.com/%s" % (ACCOUNT, region, name)
            state["pushed"] = [i for i in state["pushed"] if not i.startswith(repo + ":")]
        elif op == "wait":
            pass
        else:
            fail("fake aws: cloudformation %s is not simulated" % op, 252)
    elif (service, op) == ("lambda", "invoke"):
        # the function's answer to {"ddb2fs":"repartition",...} as the outbox it has says, or to
        # {"ddb2fs":"backfill",...}
        payload = json.loads(opts["payload"])
        stack = state["stacks"].get(opts["function-name"])
        if stack is None or "FunctionName" not in stack["outputs"]:
            fail("An error occurred (ResourceNotFoundException): Function not found")
        state.setdefault("invoked", []).append(payload)
        if payload.get("ddb2fs") == "backfill":  # the job recorded, or refused
            answer = {"errorType": "ddb2fs.BackfillRefused", "errorMessage": "no stream"} \
                if state.get("refuse_backfill") else {"backfill": 1}
        elif state.get("pending"):
            answer = {"errorType": "ddb2fs.OutboxError", "errorMessage": "records are pending"}
        else:
            answer = {"from": int(stack["parameters"]["Partitions"]), "to": payload["partitions"],
                      "records": 0, "kept": "/mnt/outbox/ddb2fs.db.before-repartition-X"}
        with open(argv[-1], "w") as f:
            json.dump(answer, f)
        out = {"StatusCode": 200}
    elif (service, op) == ("ecr", "get-login-password"):
        sys.stdout.write("fake-ecr-password\n")
        return
    else:
        fail("fake aws: %s %s is not simulated" % (service, op), 252)
    if out is None:
        return
    if "query" in opts:
        out = jmespath.search(opts["query"], out)
    sys.stdout.write((text(out) if opts.get("output") == "text" else json.dumps(out, indent=4))
                     + "\n")


def find_secret(state, sid):
    for s in state["secrets"].values():
        if sid in (s["arn"], s["name"]):
            return s
    return None


def docker(argv, state):
    cmd = argv[0]
    if cmd == "build":
        opts = argv[1:]
        tag = opts[opts.index("-t") + 1]
        context = opts[-1]
        files = sorted(os.listdir(context)) if os.path.isdir(context) else None
        entry = {"tag": tag, "context": context}
        if files is not None and ("sa.sealed" in files or "wif.json" in files):
            with open(os.path.join(context, "Dockerfile")) as f:
                entry["dockerfile"] = f.read()
            entry["files"] = files
        if files is not None and "sa.sealed" in files:
            with open(os.path.join(context, "sa.sealed"), "rb") as f:
                sealed = f.read()
            entry["sealed_magic"] = sealed[:6].decode("latin-1")
            entry["sealed_sha256"] = hashlib.sha256(sealed).hexdigest()
        if files is not None and "wif.json" in files:
            with open(os.path.join(context, "wif.json")) as f:
                entry["wif"] = f.read()
        state["built"].append(entry)
    elif cmd == "login":
        if sys.stdin.read().strip() != "fake-ecr-password":
            fail("Error response from daemon: login attempt failed", 1)
        state["logged_in"] = argv[-1]
    elif cmd == "push":
        image = argv[1]
        if image not in [b["tag"] for b in state["built"]]:
            fail("An image does not exist locally with the tag: %s" % image, 1)
        if state.get("logged_in") != image.split("/")[0]:
            fail("no basic auth credentials", 1)
        state["pushed"].append(image)
    else:
        fail("fake docker: %s is not simulated" % cmd, 1)


def main():
    tool = os.path.basename(sys.argv[0])
    argv = sys.argv[1:]
    log(tool, argv)
    state = load()
    # global options the CLI takes anywhere
    if tool == "aws":
        argv = [a for a in argv if a not in ("--no-cli-pager",)]
        aws(argv, state)
    else:
        docker(argv, state)
    save(state)


if __name__ == "__main__":
    main()
