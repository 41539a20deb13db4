"""tools/deploy: the CloudFormation template's structure and least privilege, and the deploy and
destroy commands run against recording stand-ins for 'aws' and 'docker' (fakecloud.py): the
calls, their order, dry runs that change nothing, and a destroy that undoes exactly what the
deploy created."""
import base64
import copy
import json
import os
import shlex
import shutil
import subprocess
import unittest

import test_wif as wif
from common import BIN, TempDir, clean_env, run
from fsserver import PROJECT, FirestoreServer, ServiceAccount

SOURCE = os.environ.get("SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SOURCE, "tools", "deploy", "deploy")
DESTROY = os.path.join(SOURCE, "tools", "deploy", "destroy")
TEMPLATE = os.path.join(SOURCE, "tools", "deploy", "ddb2fs.template.json")
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakecloud.py")
REGION = "eu-west-3"
WIF_AUDIENCE = ("//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/"
                "relay-pool/providers/aws")
WIF_EMAIL = "relay@orders-prod.iam.gserviceaccount.com"


def refs(node):
    """Every Ref / GetAtt / Sub name used in a piece of template."""
    found = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref":
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0])
            elif k == "Fn::Sub":
                s = v if isinstance(v, str) else v[0]
                found |= {p.split(".")[0] for p in
                          [x.split("}")[0] for x in s.split("${")[1:]]}
            else:
                found |= refs(v)
    elif isinstance(node, list):
        for v in node:
            found |= refs(v)
    return found


def resolve(node, conditions):
    """The template as CloudFormation sees it for these condition values: each Fn::If of them
    taken, AWS::NoValue dropped."""
    if isinstance(node, dict):
        if list(node) == ["Fn::If"] and node["Fn::If"][0] in conditions:
            name, yes, no = node["Fn::If"]
            return resolve(yes if conditions[name] else no, conditions)
        out = {k: resolve(v, conditions) for k, v in node.items()}
        return {k: v for k, v in out.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(node, list):
        return [resolve(v, conditions) for v in node if resolve(v, conditions) !=
                {"Ref": "AWS::NoValue"}]
    return node


class Template(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(TEMPLATE) as f:
            cls.t = json.load(f)
        cls.r = cls.t["Resources"]

    def of_type(self, kind):
        return {n: r for n, r in self.r.items() if r["Type"] == kind}

    def test_every_reference_resolves(self):
        known = set(self.t["Parameters"]) | set(self.r) | {
            "AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::NoValue", "AWS::StackName"}
        self.assertEqual(refs(self.t) - known, set())
        for name, res in self.r.items():
            if "Condition" in res:
                self.assertIn(res["Condition"], self.t["Conditions"], name)

    def test_resources_present_and_wired(self):
        p = lambda name: self.r[name]["Properties"]
        self.assertEqual(len(self.of_type("AWS::ECR::Repository")), 1)
        fs = p("FileSystem")
        self.assertIs(fs["Encrypted"], True)
        ap = p("AccessPoint")
        self.assertEqual(ap["FileSystemId"], {"Ref": "FileSystem"})
        self.assertNotEqual(ap["PosixUser"]["Uid"], "0")
        self.assertEqual(ap["RootDirectory"]["CreationInfo"]["Permissions"], "0700")
        self.assertEqual(ap["RootDirectory"]["Path"], "/ddb2fs")
        mounts = self.of_type("AWS::EFS::MountTarget")
        self.assertEqual(len(mounts), 2)
        for m in mounts.values():
            self.assertEqual(m["Properties"]["FileSystemId"], {"Ref": "FileSystem"})
            self.assertEqual(m["Properties"]["SecurityGroups"], [{"Ref": "FileSystemSecurityGroup"}])
        # NFS from the function only
        ingress = p("FileSystemSecurityGroup")["SecurityGroupIngress"]
        self.assertEqual(ingress, [{"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049,
                                    "SourceSecurityGroupId": {"Ref": "FunctionSecurityGroup"},
                                    "Description": "NFS from the function"}])
        self.assertNotIn("SecurityGroupIngress", p("FunctionSecurityGroup"))
        # the function
        fn = p("Function")
        self.assertEqual(fn["PackageType"], "Image")
        self.assertEqual(fn["Role"], {"Fn::GetAtt": ["FunctionRole", "Arn"]})
        self.assertEqual(fn["FileSystemConfigs"], [{"Arn": {"Fn::GetAtt": ["AccessPoint", "Arn"]},
                                                    "LocalMountPath": "/mnt/outbox"}])
        self.assertEqual(fn["MemorySize"], {"Ref": "MemorySize"})
        self.assertEqual(self.t["Parameters"]["MemorySize"]["Default"], 256)
        self.assertEqual(set(self.r["Function"]["DependsOn"]), set(mounts))
        env = resolve(fn["Environment"]["Variables"], {"SealedKey": True})
        self.assertTrue(env["DDB2FS_OUTBOX"].startswith("/mnt/outbox/"))
        for var in ("DDB2FS_KEY_SEALED", "DDB2FS_KEY_SECRET", "GOOGLE_CLOUD_PROJECT",
                    "DDB2FS_KEYS", "DDB2FS_DATABASE", "DDB2FS_COLLECTIONS"):
            self.assertIn(var, env)
        self.assertEqual(env["DDB2FS_KEY_SECRET"], {"Ref": "DataKeySecretArn"})
        self.assertNotIn("GOOGLE_APPLICATION_CREDENTIALS", env)
        wif = resolve(fn["Environment"]["Variables"], {"SealedKey": False})
        self.assertEqual(wif["GOOGLE_APPLICATION_CREDENTIALS"], "/opt/ddb2fs/wif.json")
        self.assertFalse({"DDB2FS_KEY_SEALED", "DDB2FS_KEY_SECRET"} & set(wif))
        self.assertEqual(self.t["Conditions"]["SealedKey"],
                         {"Fn::Equals": [{"Ref": "Credentials"}, "sealed-key"]})
        self.assertEqual(self.t["Outputs"]["DataKeySecretArn"]["Condition"], "SealedKey")
        self.assertEqual(fn["VpcConfig"]["SecurityGroupIds"], [{"Ref": "FunctionSecurityGroup"}])
        # the stream mapping
        m = p("StreamMapping")
        self.assertEqual(m["EventSourceArn"], {"Ref": "StreamArn"})
        self.assertEqual(m["FunctionName"], {"Ref": "Function"})
        self.assertEqual(m["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertIs(m["BisectBatchOnFunctionError"], True)
        self.assertEqual(m["MaximumRetryAttempts"], {"Ref": "MaximumRetryAttempts"})
        self.assertLessEqual(self.t["Parameters"]["MaximumRetryAttempts"]["MaxValue"], 10000)
        self.assertEqual(m["DestinationConfig"]["OnFailure"]["Destination"],
                         {"Fn::GetAtt": ["FailureQueue", "Arn"]})
        self.assertEqual((m["BatchSize"], m["MaximumBatchingWindowInSeconds"]),
                         ({"Ref": "BatchSize"}, {"Ref": "BatchWindowSeconds"}))
        self.assertEqual(len(self.of_type("AWS::SQS::Queue")), 1)
        # the schedule, allowed to invoke
        rule = p("DrainSchedule")
        self.assertEqual(rule["ScheduleExpression"], {"Ref": "DrainSchedule"})
        self.assertEqual(rule["Targets"][0]["Arn"], {"Fn::GetAtt": ["Function", "Arn"]})
        perm = p("DrainSchedulePermission")
        self.assertEqual((perm["Principal"], perm["SourceArn"]),
                         ("events.amazonaws.com", {"Fn::GetAtt": ["DrainSchedule", "Arn"]}))
        # the alarms, on the function's own metrics
        alarms = {a["Properties"]["MetricName"]: a["Properties"]
                  for a in self.of_type("AWS::CloudWatch::Alarm").values()}
        self.assertEqual(set(alarms), {"OldestPendingAge", "Dead", "VerifyDifferences"})
        for a in alarms.values():
            self.assertEqual(a["Namespace"], "ddb2fs")
            self.assertEqual(a["Dimensions"], [{"Name": "FunctionName", "Value": {"Ref": "Function"}}])
        # a minimal VPC with a NAT gateway when none is given
        for name in ("Vpc", "NatGateway", "PrivateSubnetA", "PrivateSubnetB", "PrivateRoute"):
            self.assertEqual(self.r[name]["Condition"], "CreateVpc")
        self.assertEqual(p("PrivateRoute")["NatGatewayId"], {"Ref": "NatGateway"})

    def test_role_least_privilege(self):
        for sealed in (True, False):
            with self.subTest(sealed_key=sealed):
                self.role_least_privilege(sealed)

    def role_least_privilege(self, sealed):
        role = resolve(self.r["FunctionRole"]["Properties"], {"SealedKey": sealed})
        self.assertNotIn("ManagedPolicyArns", role)
        statements = [s for pol in role["Policies"] for s in pol["PolicyDocument"]["Statement"]]
        by_sid = {s["Sid"]: s for s in statements}
        for s in statements:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            self.assertEqual(s["Effect"], "Allow")
            for a in actions:
                self.assertNotEqual(a, "*")
                self.assertFalse(a.endswith(":*"), a)
                self.assertNotIn("FullAccess", a)
            if s["Resource"] == "*":
                # AWS requires "*" for a function's network interfaces in a VPC
                self.assertTrue(all(a.startswith("ec2:") and "NetworkInterface" in a or
                                    a == "ec2:DescribeSubnets" or "PrivateIpAddresses" in a
                                    for a in actions), s["Sid"])
            self.assertNotIn("NotAction", s)
            self.assertNotIn("NotResource", s)
        self.assertEqual(by_sid["ReadTheStream"]["Resource"], {"Ref": "StreamArn"})
        if sealed:
            self.assertEqual(by_sid["ReadTheDataKey"],
                             {"Sid": "ReadTheDataKey", "Effect": "Allow",
                              "Action": "secretsmanager:GetSecretValue",
                              "Resource": {"Ref": "DataKeySecretArn"}})
        else:
            # Workload Identity Federation: the role signs GetCallerIdentity, which needs no
            # permission; no secret to read
            self.assertNotIn("ReadTheDataKey", by_sid)
            self.assertFalse([s for s in statements if "secretsmanager" in json.dumps(s)])
        efs = by_sid["MountTheOutbox"]
        self.assertEqual(efs["Resource"], {"Fn::GetAtt": ["FileSystem", "Arn"]})
        self.assertEqual(efs["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"],
                         {"Fn::GetAtt": ["AccessPoint", "Arn"]})
        self.assertIn("LogGroup", json.dumps(by_sid["WriteItsLogs"]["Resource"]))
        self.assertEqual(by_sid["SendFailedBatches"]["Resource"],
                         {"Fn::GetAtt": ["FailureQueue", "Arn"]})
        everything = {a for s in statements
                      for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
        self.assertFalse({a for a in everything if a.startswith(("iam:", "dynamodb:Put",
                                                                 "dynamodb:Delete", "s3:"))})

    def test_optional_daily_verify_sample_and_its_alarm(self):
        verify = {n: r for n, r in self.r.items() if n.startswith("Verify")}
        self.assertEqual(set(verify), {"VerifySchedule", "VerifySchedulePermission",
                                       "VerifyDifferencesAlarm", "VerifyPolicy"})
        # off unless a schedule is given, and only once the function exists
        self.assertEqual(self.t["Parameters"]["VerifySchedule"]["Default"], "")
        for r in verify.values():
            self.assertEqual(r["Condition"], "HasVerifySchedule")
        self.assertEqual(self.t["Conditions"]["HasVerifySchedule"],
                         {"Fn::And": [{"Condition": "HasImage"},
                                      {"Fn::Not": [{"Fn::Equals": [{"Ref": "VerifySchedule"},
                                                                   ""]}]}]})
        rule = verify["VerifySchedule"]["Properties"]
        self.assertEqual(rule["ScheduleExpression"], {"Ref": "VerifySchedule"})
        target, = rule["Targets"]
        self.assertEqual(target["Arn"], {"Fn::GetAtt": ["Function", "Arn"]})
        # the request the function reads, once CloudFormation has put the parameters in
        text = target["Input"]["Fn::Sub"]
        for name, value in (("TableName", "Orders"), ("VerifySamplePercent", "1"),
                            ("VerifyRate", "100")):
            text = text.replace("${%s}" % name, value)
        self.assertEqual(json.loads(text), {"ddb2fs": "verify", "table": "Orders", "sample": 1,
                                            "rate": 100, "recheck_after": 15})
        perm = verify["VerifySchedulePermission"]["Properties"]
        self.assertEqual((perm["Principal"], perm["SourceArn"]),
                         ("events.amazonaws.com", {"Fn::GetAtt": ["VerifySchedule", "Arn"]}))
        # the alarm watches the metric the function logs; a sample that did not run alarms too
        alarm = verify["VerifyDifferencesAlarm"]["Properties"]
        self.assertEqual((alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]),
                         ("ddb2fs", "VerifyDifferences",
                          [{"Name": "FunctionName", "Value": {"Ref": "Function"}}]))
        self.assertEqual((alarm["Threshold"], alarm["ComparisonOperator"],
                          alarm["TreatMissingData"], alarm["Period"]),
                         (0, "GreaterThanThreshold", "breaching", 86400))
        # reading the table: only what verify asks, only of this table
        policy = verify["VerifyPolicy"]["Properties"]
        self.assertEqual(policy["Roles"], [{"Ref": "FunctionRole"}])
        st, = policy["PolicyDocument"]["Statement"]
        self.assertEqual(sorted(st["Action"]),
                         ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Scan"])
        self.assertTrue(st["Resource"]["Fn::Sub"].endswith(":table/${TableName}"))


class Commands(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        bindir = self.tmp.file("bin")
        os.mkdir(bindir)
        for tool in ("aws", "docker", "shred"):
            os.symlink(FAKE, os.path.join(bindir, tool))
        self.state = self.tmp.file("cloud.json")
        self.log = self.tmp.file("calls.jsonl")
        self.cloud = {"tables": {"Orders": {"pk": "customer", "sk": "order"},
                                 "Users": {"pk": "id", "stream": {
                                     "enabled": True, "view": "NEW_IMAGE",
                                     "arn": "arn:aws:dynamodb:%s:123456789012:table/Users/"
                                            "stream/2025-01-01T00:00:00.000" % REGION}}},
                      "secrets": {}, "stacks": {}, "built": [], "pushed": []}
        self.save(self.cloud)
        self.key = ServiceAccount(self.tmp.file("sa.json"), "https://oauth2.googleapis.com/token",
                                  project="orders-prod")
        path = [bindir] + [d for d in os.environ["PATH"].split(os.pathsep)
                           if not (os.path.exists(os.path.join(d, "aws")) or
                                   os.path.exists(os.path.join(d, "docker")))]
        self.env = {"PATH": os.pathsep.join(path), "HOME": self.tmp.path,
                    "FAKE_STATE": self.state, "FAKE_LOG": self.log, "DDB2FS_BIN": BIN,
                    # the variables users of the older walkthrough have set
                    "AWS_REGION": REGION, "DYNAMODB_TABLE": "Orders",
                    "GCP_PROJECT_ID": "orders-prod", "APP_NAME": "orders-mirror",
                    "GCP_KEY_FILE": self.key.path,
                    # the Dockerfile's pins (made up: the fake docker only records them)
                    "BUILD_IMAGE_DIGEST": "sha256:" + "1" * 64,
                    "RUN_IMAGE_DIGEST": "sha256:" + "2" * 64, "SODIUM_SHA256": "3" * 64}

    def tearDown(self):
        self.tmp.cleanup()

    def save(self, cloud):
        with open(self.state, "w") as f:
            json.dump(cloud, f)

    def cloud_now(self):
        with open(self.state) as f:
            return json.load(f)

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            out = [json.loads(l) for l in f]
        os.remove(self.log)
        return out

    def run_tool(self, tool, *args, code=0, env=None):
        p = subprocess.run([tool] + list(args), env=env or self.env, capture_output=True,
                           text=True, timeout=300, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, code, p.stderr)
        return p

    @staticmethod
    def printed(p):
        return [l[2:] for l in p.stdout.splitlines() if l.startswith("+ ")]

    @staticmethod
    def verbs(calls):
        return [" ".join([c["tool"]] + c["argv"][:2 if c["tool"] == "aws" else 1])
                for c in calls]

    READ_ONLY = {"aws sts get-caller-identity", "aws dynamodb describe-table",
                 "aws cloudformation describe-stacks", "aws secretsmanager describe-secret"}

    def test_deploy_dry_run_changes_nothing_and_prints_every_call(self):
        p = self.run_tool(DEPLOY, "--dry-run", "--enable-stream")
        calls = self.calls()
        self.assertTrue(set(self.verbs(calls)) <= self.READ_ONLY, self.verbs(calls))
        self.assertEqual(self.cloud_now(), self.cloud)
        lines = self.printed(p)
        order = [" ".join(l.split()[:3]) if l.startswith("aws") else
                 "ddb2fs seal-key" if "seal-key" in l else " ".join(l.split()[:2])
                 for l in lines]
        self.assertEqual(order, [
            "aws dynamodb update-table", "aws dynamodb wait", "ddb2fs seal-key",
            "aws secretsmanager create-secret", "aws cloudformation deploy", "docker build",
            "docker build", "aws ecr get-login-password", "docker login", "docker push",
            "aws cloudformation deploy"])
        self.assertIn("StreamViewType=NEW_AND_OLD_IMAGES", lines[0])
        self.assertIn("--secret-string file://", lines[3])
        self.assertNotIn("ImageUri=", lines[4])
        self.assertIn("ImageUri=123456789012.dkr.ecr.eu-west-3.amazonaws.com/orders-mirror:",
                      lines[10])
        for needed in ("KeySchema=Orders=customer\\,order", "GcpProjectId=orders-prod",
                       "StreamEnabledByDeploy=true", "AppName=orders-mirror"):
            self.assertIn(needed, lines[4])
        self.assertIn("--provenance=false", lines[5])
        self.assertFalse(os.path.exists(self.key.path + ".sealed"))
        self.assertIn("dry run: nothing was changed", p.stderr)

    def test_deploy_then_destroy_undoes_exactly_what_deploy_created(self):
        before = copy.deepcopy(self.cloud)
        p = self.run_tool(DEPLOY, "--enable-stream", "--collection", "orders")
        calls = self.calls()
        self.assertEqual([v for v in self.verbs(calls) if v not in self.READ_ONLY], [
            "aws dynamodb update-table", "aws dynamodb wait", "aws secretsmanager create-secret",
            "shred -u", "aws cloudformation deploy", "docker build", "docker build",
            "aws ecr get-login-password", "docker login", "docker push",
            "aws cloudformation deploy"])
        cloud = self.cloud_now()
        # what deploy made
        self.assertEqual(list(cloud["stacks"]), ["orders-mirror"])
        params = cloud["stacks"]["orders-mirror"]["parameters"]
        (secret,) = cloud["secrets"].values()
        self.assertEqual(secret["name"], "orders-mirror/data-key")
        self.assertEqual(len(base64.b64decode(secret["value"])), 32)
        self.assertEqual(params["DataKeySecretArn"], secret["arn"])
        self.assertEqual(params["StreamArn"], cloud["tables"]["Orders"]["stream"]["arn"])
        self.assertEqual(cloud["tables"]["Orders"]["stream"]["view"], "NEW_AND_OLD_IMAGES")
        self.assertEqual((params["KeySchema"], params["Collections"], params["GcpProjectId"]),
                         ("Orders=customer,order", "Orders=orders", "orders-prod"))
        self.assertEqual(params["ImageUri"], cloud["pushed"][0])
        image = [b for b in cloud["built"] if b["tag"] == cloud["pushed"][0]][0]
        self.assertEqual(image["files"], ["Dockerfile", "sa.sealed"])  # no data key, no plain key
        self.assertEqual(image["sealed_magic"], "D2FKEY")
        self.assertIn("COPY --chmod=0444 sa.sealed /opt/ddb2fs/sa.sealed", image["dockerfile"])
        # no key material on any command line or in the output
        everything = json.dumps(calls) + p.stdout + p.stderr
        self.assertNotIn(secret["value"], everything)
        for s in self.key.secrets():
            self.assertNotIn(s, everything)
        self.assertEqual(sorted(os.listdir(self.tmp.path)),
                         ["bin", "calls.jsonl", "cloud.json", "sa.json"]
                         if os.path.exists(self.log) else ["bin", "cloud.json", "sa.json"])

        # destroy --dry-run: prints exactly the undoing, changes nothing
        p = self.run_tool(DESTROY, "--dry-run")
        self.assertTrue(set(self.verbs(self.calls())) <= self.READ_ONLY)
        self.assertEqual(self.cloud_now(), cloud)
        self.assertEqual(self.printed(p), [
            "aws cloudformation delete-stack --stack-name orders-mirror",
            "aws cloudformation wait stack-delete-complete --stack-name orders-mirror",
            "aws secretsmanager delete-secret --secret-id %s --force-delete-without-recovery"
            % secret["arn"],
            "aws dynamodb update-table --table-name Orders --stream-specification "
            "StreamEnabled=false"])
        # destroy, not confirmed: nothing
        self.run_tool(DESTROY, code=1)
        self.assertEqual(self.cloud_now(), cloud)
        # destroy: back to what was there before, the stream off again
        self.run_tool(DESTROY, "--yes")
        after = self.cloud_now()
        self.assertEqual(after["stacks"], {})
        self.assertEqual(after["secrets"], {})
        self.assertEqual(after["pushed"], [])
        self.assertIs(after["tables"]["Orders"]["stream"]["enabled"], False)
        self.assertEqual(after["tables"]["Users"], before["tables"]["Users"])

    def test_a_stream_already_there_is_left_alone(self):
        env = dict(self.env, DYNAMODB_TABLE="Users")
        self.run_tool(DEPLOY, env=env)
        verbs = self.verbs(self.calls())
        self.assertNotIn("aws dynamodb update-table", verbs)
        params = self.cloud_now()["stacks"]["orders-mirror"]["parameters"]
        self.assertEqual((params["StreamEnabledByDeploy"], params["KeySchema"]),
                         ("false", "Users=id"))
        # a second deploy updates the stack and the secret, creates nothing new
        self.run_tool(DEPLOY, env=env)
        verbs = self.verbs(self.calls())
        self.assertIn("aws secretsmanager put-secret-value", verbs)
        self.assertNotIn("aws secretsmanager create-secret", verbs)
        self.assertEqual(len(self.cloud_now()["pushed"]), 2)
        p = self.run_tool(DESTROY, "--dry-run", env=env)
        self.assertFalse([l for l in self.printed(p) if "update-table" in l])
        self.run_tool(DESTROY, "--yes", env=env)
        after = self.cloud_now()
        self.assertEqual(after["tables"], self.cloud["tables"])
        self.assertEqual((after["stacks"], after["secrets"]), ({}, {}))

    def test_deploy_with_wif_has_no_key_and_no_secret(self):
        p = self.run_tool(DEPLOY, "--enable-stream", "--wif", WIF_AUDIENCE,
                          "--service-account", WIF_EMAIL)
        calls = self.calls()
        self.assertEqual([v for v in self.verbs(calls) if v not in self.READ_ONLY], [
            "aws dynamodb update-table", "aws dynamodb wait", "aws cloudformation deploy",
            "docker build", "docker build", "aws ecr get-login-password", "docker login",
            "docker push", "aws cloudformation deploy"])
        self.assertFalse([c for c in calls if "seal-key" in json.dumps(c)])
        cloud = self.cloud_now()
        self.assertEqual(cloud["secrets"], {})
        params = cloud["stacks"]["orders-mirror"]["parameters"]
        self.assertEqual((params["Credentials"], params["DataKeySecretArn"]), ("wif", ""))
        image = [b for b in cloud["built"] if b["tag"] == cloud["pushed"][0]][0]
        self.assertEqual(image["files"], ["Dockerfile", "wif.json"])
        self.assertIn("COPY --chmod=0444 wif.json /opt/ddb2fs/wif.json", image["dockerfile"])
        # the configuration Google's create-cred-config --aws writes, as the README shows it
        config = json.loads(image["wif"])
        self.assertEqual(config, {
            "type": "external_account", "audience": WIF_AUDIENCE,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": "https://sts.googleapis.com/v1/token",
            "service_account_impersonation_url":
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                "relay@orders-prod.iam.gserviceaccount.com:generateAccessToken",
            "service_account_impersonation": {"token_lifetime_seconds": 3600},
            "credential_source": {
                "environment_id": "aws1",
                "regional_cred_verification_url":
                    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity"
                    "&Version=2011-06-15"}})
        # what to run on Google's side, with the role deploy made
        role = "orders-mirror-FunctionRole-FAKE0123"
        self.assertIn("arn:aws:iam::123456789012:role/" + role, p.stderr)
        self.assertIn("providers update-aws aws --location=global", p.stderr)
        self.assertIn("--workload-identity-pool=relay-pool", p.stderr)
        self.assertIn("assertion.arn.startsWith('arn:aws:sts::123456789012:assumed-role/%s/')"
                      % role, p.stderr)
        self.assertIn("add-iam-policy-binding relay@orders-prod.iam.gserviceaccount.com",
                      p.stderr)
        self.assertIn('--member="principalSet://iam.googleapis.com/projects/123456/locations/'
                      'global/workloadIdentityPools/relay-pool/attribute.aws_role/%s"' % role,
                      p.stderr)
        for s in self.key.secrets():
            self.assertNotIn(s, json.dumps(calls) + p.stdout + p.stderr)
        self.drains_with(config)
        # destroy: no secret to remove
        p = self.run_tool(DESTROY, "--dry-run")
        self.assertFalse([l for l in self.printed(p) if "secretsmanager" in l])
        self.run_tool(DESTROY, "--yes")
        self.assertEqual((self.cloud_now()["stacks"], self.cloud_now()["secrets"]), ({}, {}))

    def drains_with(self, config):
        """ddb2fs takes the configuration deploy wrote: a drain through the local STS and IAM
        Credentials stand-ins, with only Google's two hosts pointed at them."""
        fs = FirestoreServer()
        try:
            fs.control("wif", {"audience": WIF_AUDIENCE, "region": wif.REGION, "akid": wif.AKID,
                               "secret": wif.SECRET, "token": wif.SESSION,
                               "service_account": WIF_EMAIL, "federated_ok": False})
            local = json.loads(json.dumps(config).replace(
                "https://sts.googleapis.com", fs.url).replace(
                "https://iamcredentials.googleapis.com", fs.url))
            path = self.tmp.file("wif-local.json")
            with open(path, "w") as f:
                json.dump(local, f)
            env = clean_env(DDB2FS_OUTBOX=self.tmp.file("wif.db"), DDB2FS_KEYS="Wif=pk",
                            GOOGLE_APPLICATION_CREDENTIALS=path, GOOGLE_CLOUD_PROJECT=PROJECT,
                            DDB2FS_FIRESTORE_ENDPOINT=fs.url, AWS_REGION=wif.REGION,
                            AWS_ACCESS_KEY_ID=wif.AKID, AWS_SECRET_ACCESS_KEY=wif.SECRET,
                            AWS_SESSION_TOKEN=wif.SESSION)
            recs = wif.records(3)
            p = run(["ingest", "-"], env=env, stdin=json.dumps({"Records": recs}))
            self.assertEqual(p.returncode, 0, p.stderr)
            p = run(["drain"], env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(fs.documents(), wif.expected(recs, fs.prefix()))
        finally:
            fs.stop()

    def test_wif_after_a_sealed_key_deploy_and_its_refusals(self):
        env = dict(self.env, DYNAMODB_TABLE="Users")
        self.run_tool(DEPLOY, env=env)
        (secret,) = self.cloud_now()["secrets"].values()
        self.calls()
        p = self.run_tool(DEPLOY, "--wif", WIF_AUDIENCE, "--service-account", WIF_EMAIL,
                          env=env)
        self.assertIn("the data key of an earlier sealed-key deploy (%s) is no longer used"
                      % secret["arn"], p.stderr)
        self.assertEqual(self.cloud_now()["stacks"]["orders-mirror"]["parameters"]
                         ["Credentials"], "wif")
        p = self.run_tool(DESTROY, "--dry-run", env=env)
        self.assertIn("aws secretsmanager delete-secret --secret-id %s "
                      "--force-delete-without-recovery" % secret["arn"], self.printed(p))
        self.run_tool(DESTROY, "--yes", env=env)
        self.assertEqual(self.cloud_now()["secrets"], {})
        self.calls()
        # refusals: nothing asked of the cloud but look-ups
        p = self.run_tool(DEPLOY, "--dry-run", "--wif", WIF_AUDIENCE, env=env, code=2)
        self.assertIn("--service-account EMAIL (with --wif)", p.stderr)
        p = self.run_tool(DEPLOY, "--dry-run", "--service-account", WIF_EMAIL, env=env, code=2)
        self.assertIn("--wif AUDIENCE (with --service-account)", p.stderr)
        for audience in ("projects/123456/locations/global/workloadIdentityPools/p/providers/a",
                         "//iam.googleapis.com/projects/orders-prod/locations/global/"
                         "workloadIdentityPools/p/providers/a",
                         WIF_AUDIENCE + '","type":"x'):
            p = self.run_tool(DEPLOY, "--dry-run", "--wif", audience, "--service-account",
                              WIF_EMAIL, env=env, code=1)
            self.assertIn("is not //iam.googleapis.com/projects/NUMBER/", p.stderr)
        for email in ("relay", "relay@example.com", 'a"@x.iam.gserviceaccount.com'):
            p = self.run_tool(DEPLOY, "--dry-run", "--wif", WIF_AUDIENCE, "--service-account",
                              email, env=env, code=1)
            self.assertIn("is not a service account's email", p.stderr)
        self.assertTrue(set(self.verbs(self.calls())) <= self.READ_ONLY)

    def deployed_params(self):
        return self.cloud_now()["stacks"]["orders-mirror"]["parameters"]

    def test_key_names_read_from_json_and_those_ddb2fs_keys_cannot_carry(self):
        cloud = copy.deepcopy(self.cloud)
        cloud["tables"]["Spaced"] = {"pk": "customer id", "sk": "order no",
                                     "stream": dict(self.cloud["tables"]["Users"]["stream"])}
        self.save(cloud)
        self.run_tool(DEPLOY, env=dict(self.env, DYNAMODB_TABLE="Spaced"))
        params = self.deployed_params()
        self.assertEqual(params["KeySchema"], "Spaced=customer id,order no")
        self.assertEqual(params["TableName"], "Spaced")
        for pk, sk, shown in (("id;Other=evil", None, "';' '='"), ("id", "a,b", "','"),
                              ("x\ty", None, "'\\t'"), (" id", None, "spaces around it")):
            self.save(dict(cloud, stacks={}, tables={"Bad": dict({"pk": pk}, **(
                {"sk": sk} if sk else {}))}))
            self.calls()
            p = self.run_tool(DEPLOY, "--dry-run", env=dict(self.env, DYNAMODB_TABLE="Bad"),
                              code=1)
            self.assertIn("which DDB2FS_KEYS cannot carry", p.stderr)
            self.assertIn(shown, p.stderr)
            self.assertEqual(self.printed(p), [])
            self.assertTrue(set(self.verbs(self.calls())) <= self.READ_ONLY)
        p = self.run_tool(DEPLOY, "--dry-run", "--collection", "a;Users=b", code=1)
        self.assertIn("--collection 'a;Users=b' holds", p.stderr)
        p = self.run_tool(DEPLOY, "--dry-run", "--table", "bad name", code=1)
        self.assertIn("is not a DynamoDB table name", p.stderr)

    def test_data_key_shredded_pins_passed_tables_set(self):
        self.run_tool(DEPLOY, "--enable-stream")
        shreds = [c["argv"] for c in self.calls() if c["tool"] == "shred"]
        self.assertEqual(len(shreds), 1, shreds)
        self.assertEqual(shreds[0][0], "-u")
        self.assertTrue(shreds[0][1].endswith("/data.key"))
        self.assertFalse(os.path.exists(shreds[0][1]))
        built = self.cloud_now()["built"][0]
        self.assertEqual(built["build_args"], {"BUILD_IMAGE_DIGEST": "sha256:" + "1" * 64,
                                               "RUN_IMAGE_DIGEST": "sha256:" + "2" * 64,
                                               "SODIUM_SHA256": "3" * 64})
        env = {k: v for k, v in self.env.items() if k != "SODIUM_SHA256"}
        p = self.run_tool(DEPLOY, env=env, code=1)
        self.assertIn("SODIUM_SHA256 is not set", p.stderr)
        with open(TEMPLATE) as f:
            template = json.load(f)
        fn = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
        self.assertEqual(fn[0]["Properties"]["Environment"]["Variables"]["DDB2FS_TABLES"],
                         {"Ref": "TableName"})
    def test_backfill_once_the_stack_is_up(self):
        env = dict(self.env, DYNAMODB_TABLE="Users")
        p = self.run_tool(DEPLOY, "--backfill", "250", env=env)
        cloud = self.cloud_now()
        self.assertEqual(cloud["invoked"], [{"ddb2fs": "backfill", "table": "Users", "rate": 250,
                                             "stream_is_mapped": True}])
        verbs = [v for v in self.verbs(self.calls()) if v not in self.READ_ONLY]
        self.assertGreater(verbs.index("aws lambda invoke"),
                           len(verbs) - 1 - verbs[::-1].index("aws cloudformation deploy"))
        self.assertIn("starting the backfill of Users at 250 read units/s", p.stderr)
        # the role may scan that table and no other
        with open(os.path.join(os.path.dirname(DEPLOY), "ddb2fs.template.json")) as f:
            template = json.load(f)
        statements = template["Resources"]["FunctionRole"]["Properties"]["Policies"][0][
            "PolicyDocument"]["Statement"]
        (scan,) = [s for s in statements if isinstance(s, dict) and "dynamodb:Scan" in
                   s.get("Action", [])]
        self.assertEqual(scan["Resource"], {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:"
                                            "${AWS::Region}:${AWS::AccountId}:table/${TableName}"})
        # refused by the function: deploy says so
        cloud["refuse_backfill"] = True
        self.save(cloud)
        p = self.run_tool(DEPLOY, "--backfill", "250", env=env, code=1)
        self.assertIn("the backfill did not start", p.stderr)
        self.assertIn("no stream", p.stderr)
        for bad in ("0", "x", "-5"):
            p = self.run_tool(DEPLOY, "--dry-run", "--backfill", bad, env=env, code=1)
            self.assertIn("--backfill '%s': give the read capacity units" % bad, p.stderr)

    def test_partitions_of_a_new_stack_and_moving_those_of_a_deployed_one(self):
        env = dict(self.env, DYNAMODB_TABLE="Users")
        self.run_tool(DEPLOY, "--partitions", "8", env=env)
        cloud = self.cloud_now()
        self.assertEqual(cloud["stacks"]["orders-mirror"]["parameters"]["Partitions"], "8")
        self.assertNotIn("invoked", cloud)  # a new outbox is made with its files
        # the same number again: nothing moves; no flag: the number stays
        self.run_tool(DEPLOY, env=env)
        self.run_tool(DEPLOY, "--partitions", "8", env=env)
        self.assertNotIn("invoked", self.cloud_now())
        self.assertEqual(self.cloud_now()["stacks"]["orders-mirror"]["parameters"]
                         ["Partitions"], "8")
        # another number: the function moves the outbox, then the stack says so
        self.calls()
        p = self.run_tool(DEPLOY, "--partitions", "16", env=env)
        cloud = self.cloud_now()
        self.assertEqual(cloud["invoked"], [{"ddb2fs": "repartition", "partitions": 16}])
        self.assertEqual(cloud["stacks"]["orders-mirror"]["parameters"]["Partitions"], "16")
        verbs = [v for v in self.verbs(self.calls()) if v not in self.READ_ONLY]
        self.assertLess(verbs.index("aws lambda invoke"),
                        len(verbs) - 1 - verbs[::-1].index("aws cloudformation deploy"))
        self.assertIn("moving the outbox from 8 to 16 files", p.stderr)
        # the function cannot move it: deploy stops before the stack changes its number
        cloud["pending"] = True
        self.save(cloud)
        p = self.run_tool(DEPLOY, "--partitions", "4", env=env, code=1)
        self.assertIn("the outbox was not moved", p.stderr)
        self.assertIn("records are pending", p.stderr)
        self.assertEqual(self.cloud_now()["stacks"]["orders-mirror"]["parameters"]
                         ["Partitions"], "16")
        p = self.run_tool(DEPLOY, "--dry-run", "--partitions", "2", env=env)
        (line,) = [shlex.split(l) for l in self.printed(p) if l.startswith("aws lambda invoke")]
        self.assertEqual(line[:5], ["aws", "lambda", "invoke", "--function-name", "orders-mirror"])
        self.assertEqual(json.loads(line[line.index("--payload") + 1]),
                         {"ddb2fs": "repartition", "partitions": 2})
        for bad in ("0", "65", "x"):
            p = self.run_tool(DEPLOY, "--dry-run", "--partitions", bad, env=env, code=1)
            self.assertIn("--partitions '%s': use 1 to 64" % bad, p.stderr)

    def test_scheduled_verify_set_kept_and_stopped(self):
        env = dict(self.env, DYNAMODB_TABLE="Users")
        params = lambda: self.cloud_now()["stacks"]["orders-mirror"]["parameters"]  # noqa: E731
        self.run_tool(DEPLOY, env=env)
        self.assertEqual((params()["VerifySchedule"], params()["VerifySamplePercent"],
                          params()["VerifyRate"]), ("", "1", "100"))  # the template's defaults
        self.run_tool(DEPLOY, "--verify-schedule", "cron(0 3 * * ? *)", "--verify-sample",
                      "2.5", "--verify-rate", "0", env=env)
        self.assertEqual((params()["VerifySchedule"], params()["VerifySamplePercent"],
                          params()["VerifyRate"]), ("cron(0 3 * * ? *)", "2.5", "0"))
        # a deploy without the flags keeps them; one flag changes that one only
        self.run_tool(DEPLOY, env=env)
        self.run_tool(DEPLOY, "--verify-rate", "50", env=env)
        self.assertEqual((params()["VerifySchedule"], params()["VerifySamplePercent"],
                          params()["VerifyRate"]), ("cron(0 3 * * ? *)", "2.5", "50"))
        p = self.run_tool(DEPLOY, "--dry-run", "--verify-schedule", "rate(1 day)", env=env)
        (line,) = [shlex.split(l) for l in self.printed(p)
                   if l.startswith("aws cloudformation deploy")][:1]
        self.assertIn("VerifySchedule=rate(1 day)", line)
        self.run_tool(DEPLOY, "--verify-schedule", "off", env=env)
        self.assertEqual(params()["VerifySchedule"], "")
        schedule, share = "give an EventBridge schedule", "give a percentage over 0, at most 100"
        for flag, bad, said in (("--verify-schedule", "daily", schedule),
                                ("--verify-schedule", 'cron(") x', schedule),
                                ("--verify-sample", "0", share),
                                ("--verify-sample", "101", share),
                                ("--verify-sample", "x", share),
                                ("--verify-rate", "-1",
                                 "give read capacity units per second, 0 or more")):
            p = self.run_tool(DEPLOY, "--dry-run", flag, bad, env=env, code=1)
            self.assertIn("%s '%s': %s" % (flag, bad, said), p.stderr)

    def test_inputs_and_refusals(self):
        env = {k: v for k, v in self.env.items()
               if k not in ("AWS_REGION", "DYNAMODB_TABLE", "GCP_PROJECT_ID", "GCP_KEY_FILE")}
        p = self.run_tool(DEPLOY, "--dry-run", env=env, code=2)
        for flag in ("--region", "--table", "--gcp-project", "--key-file"):
            self.assertIn(flag, p.stderr)
        # flags instead of the variables
        self.run_tool(DEPLOY, "--dry-run", "--region", REGION, "--table", "Users",
                      "--gcp-project", "orders-prod", "--key-file", self.key.path, env=env)
        p = self.run_tool(DEPLOY, "--dry-run", code=1)
        self.assertIn("has no stream: run again with --enable-stream", p.stderr)
        p = self.run_tool(DEPLOY, "--dry-run", env=dict(self.env, DYNAMODB_TABLE="Nope"), code=1)
        self.assertIn("cannot describe table 'Nope'", p.stderr)
        cloud = copy.deepcopy(self.cloud)
        cloud["tables"]["Users"]["stream"]["view"] = "KEYS_ONLY"
        self.save(cloud)
        p = self.run_tool(DEPLOY, "--dry-run", env=dict(self.env, DYNAMODB_TABLE="Users"),
                          code=1)
        self.assertIn("streams KEYS_ONLY; ddb2fs needs NEW_IMAGE or NEW_AND_OLD_IMAGES", p.stderr)
        p = self.run_tool(DEPLOY, "--dry-run", "--app", "Bad_Name", code=1)
        self.assertIn("--app 'Bad_Name'", p.stderr)
        p = self.run_tool(DEPLOY, "--dry-run", "--vpc-id", "vpc-1", code=1)
        self.assertIn("two private subnets", p.stderr)
        inside = os.path.join(SOURCE, "build", "test-deploy-sa.json")
        shutil.copy(self.key.path, inside)
        try:
            p = self.run_tool(DEPLOY, "--dry-run", "--key-file", inside, code=1)
        finally:
            os.remove(inside)
        self.assertIn("the image's build context: move it out", p.stderr)
        p = self.run_tool(DESTROY, "--dry-run", code=1)
        self.assertIn("no stack 'orders-mirror'", p.stderr)
        self.assertEqual(self.cloud_now(), cloud)


if __name__ == "__main__":
    unittest.main()
