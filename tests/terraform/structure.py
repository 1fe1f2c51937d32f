"""Structural checks of the Terraform module (terraform/) and its example, read with python-hcl2.

    structure.py ROOT              the checks; exit 1 naming every offending resource
    structure.py ROOT --self-test  each check against a copy of terraform/ broken on purpose: it must fail

What they prove:
- environment: each function's environment sets exactly the variables its code reads, as the table in
  docs/interfaces.md lists them (a Rust test keeps that table equal to the code): none missing that the
  code requires, none the code never reads, none of the "local runs only" ones;
- iam: every statement of every policy names its resources, none is `*` or a whole-service wildcard,
  no Allow grants a wildcard action, and no managed policy is attached (their resources are `*`);
- schedules: each schedule's expression (the variables' defaults and the example's values) is a valid
  EventBridge Scheduler rate() or cron(), feed every 15 minutes and health every 5 by default, with a
  retry policy and a dead-letter queue;
- packaging: runtime provided.al2023, handler bootstrap, the architecture scripts/package.sh builds by
  default, and zip paths equal to those package.sh writes;
- metrics: every alarm on a sigsci-kit namespace uses a namespace and metric names the code emits;
- docs: terraform/README.md names every input and output;
- ocsf: the OCSF Glue table reads the exporter's Hive layout ({feed_prefix}/ocsf/…) as Parquet, the
  Security Lake custom source registers HTTP Activity, and only the feed exporter's role gets the
  lake's prefix; the role the exporter assumes for the OCSF (SIGSCI_KIT_OCSF_ROLE_ARN) is the one
  ARN any sts:AssumeRole grant of the module names, granted to the feed exporter's role alone.

Resources with `for_each = local.X` over a literal map (the functions, their policy documents) are
checked once per key, with each.value resolved from the map; a dynamic statement or an alarms map the
checks cannot read fails rather than passing unchecked.
"""

import re
import shutil
import sys
import tempfile
from pathlib import Path

import hcl2

FUNCTIONS = {"feed_export": "feed-export", "agent_health": "agent-health", "ack_url": "ack-url"}


class Module:
    """The parsed .tf files of one directory (not recursive)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.blocks = {"resource": [], "data": [], "variable": [], "locals": [], "module": []}
        for path in sorted(directory.glob("*.tf")):
            with path.open() as handle:
                parsed = hcl2.load(handle)
            for kind in self.blocks:
                self.blocks[kind].extend(parsed.get(kind, []))

    def resources(self, kind: str, data: bool = False):
        """(name, body) of every resource (or data source) of that type."""
        for block in self.blocks["data" if data else "resource"]:
            for body in block.get(kind, {}).items() if kind in block else []:
                yield body

    def instances(self, kind: str, data: bool = False):
        """(address, body, value) of every instance of that type: a resource with `for_each = local.X`
        over a literal map is one instance per key (address kind.name["key"]), its each.key and
        each.value references resolved (resolve); any other resource is one instance, value None."""
        prefix = f"data.{kind}" if data else kind
        for name, body in self.resources(kind, data):
            source = re.fullmatch(r"\$\{local\.(\w+)\}", str(attr(body, "for_each")))
            entries = self.local(source.group(1)) if source else None
            if not isinstance(entries, dict):
                yield f"{prefix}.{name}", body, None
                continue
            for key, value in entries.items():
                yield f'{prefix}.{name}["{key}"]', resolve(body, {"each": (key, value)}), value

    def all_resources(self):
        for block in self.blocks["resource"]:
            for kind, named in block.items():
                for name, body in named.items():
                    yield kind, name, body

    def local(self, name: str):
        for block in self.blocks["locals"]:
            if name in block:
                return unwrap(block[name])
        return None

    def variables(self) -> dict:
        found = {}
        for block in self.blocks["variable"]:
            for name, body in block.items():
                found[name] = body
        return found

    def default(self, variable: str):
        """(has_default, value) of a variable."""
        body = self.variables().get(variable)
        if body is None or "default" not in body:
            return False, None
        return True, unwrap(body["default"])


def unwrap(value):
    """python-hcl2 wraps attribute values in one-element lists."""
    while isinstance(value, list) and len(value) == 1 and not isinstance(value[0], str | int | float | bool | type(None)):
        value = value[0]
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


REFERENCE = re.compile(r"\b(\w+)\.(key|value)((?:\.\w+)*)\b")


def resolve(value, scope: dict):
    """value with references to scope's iterators ({"each": (key, value), "statement": ...}) replaced:
    a whole `${each.value.a}` by what it names (any type), one inside a longer expression by the named
    expression when that is a plain `${reference}` (`${f(each.value.zip)}` -> `${f(var.zip)}`)."""
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, scope) for key, item in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def named(match):
        if match.group(1) not in scope:
            return None, False
        key, found = scope[match.group(1)]
        if match.group(2) == "key":
            return key, True
        for part in match.group(3).split(".")[1:]:
            if not isinstance(found, dict) or part not in found:
                return None, False
            found = unwrap(found[part])
        return found, True

    whole = re.fullmatch(r"\$\{(\w+\.(?:key|value)(?:\.\w+)*)\}", value)
    if whole:
        found, ok = named(REFERENCE.fullmatch(whole.group(1)))
        return found if ok else value

    def inline(match):
        found, ok = named(match)
        if ok and isinstance(found, str) and re.fullmatch(r"\$\{[\w.]+\}", found):
            return found[2:-1]
        if ok and isinstance(found, str) and match.group(2) == "key":
            return f'"{found}"'
        return match.group(0)

    return REFERENCE.sub(inline, value)


def attr(body: dict, name: str):
    return unwrap(body.get(name)) if name in body else None


def blocks(body: dict, name: str) -> list:
    value = body.get(name, [])
    return value if isinstance(value, list) else [value]


class Report:
    def __init__(self):
        self.failures = []

    def fail(self, check: str, where: str, message: str):
        self.failures.append(f"{check}: {where}: {message}")


# ---- environment ---------------------------------------------------------------------------------

def documented_environment(root: Path) -> dict:
    """{function: {variable: "required"|"optional"}} and the "local runs only" variables, from the table."""
    lines = (root / "docs/interfaces.md").read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| variable |")), None)
    if start is None:
        raise SystemExit("docs/interfaces.md has no environment table (a line starting '| variable |')")
    header = [cell.strip() for cell in lines[start].split("|")]
    table = {function: {} for function in FUNCTIONS.values()}
    local_only = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.split("|")]
        variable = cells[1].strip("`")
        for function in FUNCTIONS.values():
            if function not in header:
                raise SystemExit(f"docs/interfaces.md: the environment table has no column {function!r}")
            use = cells[header.index(function)]
            if use in ("required", "optional"):
                table[function][variable] = use
        if "local runs only" in cells[-2]:
            local_only.add(variable)
    return table, local_only


def lambda_functions(module: Module) -> dict:
    """{key: (address, body, entry)}: the functions, by for_each key (or resource name without one)."""
    found = {}
    for address, body, entry in module.instances("aws_lambda_function"):
        key = re.search(r'\["(\w+)"\]$', address)
        found[key.group(1) if key else address.split(".", 1)[1]] = (address, body, entry)
    return found


def check_environment(root: Path, module: Module, report: Report):
    table, local_only = documented_environment(root)
    functions = lambda_functions(module)
    for name in sorted(set(functions) - set(FUNCTIONS)):
        report.fail("environment", functions[name][0], "a function the contract does not know")
    for name, function in FUNCTIONS.items():
        if name not in functions:
            report.fail("environment", f"aws_lambda_function.function[\"{name}\"]", "missing")
            continue
        where, body, entry = functions[name]
        # The environment is the function's entry of local.functions without its null entries.
        expression = attr(unwrap(blocks(body, "environment")) or {}, "variables") or ""
        if entry is None or not re.fullmatch(r"\$\{\{for (\w+) , (\w+) in each\.value\.environment : \1 => \2 if \2 != None\}\}", str(expression)):
            report.fail("environment", where, f"environment.variables must be each.value.environment (local.functions) without its null entries, is {expression!r}")
            continue
        environment = unwrap(entry.get("environment"))
        if not isinstance(environment, dict):
            report.fail("environment", where, f"local.functions.{name}.environment is not a map of variables")
            continue
        wanted = table[function]
        for variable in sorted(environment):
            if variable not in wanted:
                report.fail("environment", where, f"sets {variable}, which {function} never reads (docs/interfaces.md)")
            elif variable in local_only:
                report.fail("environment", where, f"sets {variable}, which is for local runs only")
        for variable, use in sorted(wanted.items()):
            if use != "required":
                continue
            value = environment.get(variable)
            if value is None:
                report.fail("environment", where, f"does not set {variable}, which {function} requires")
                continue
            text = str(value)
            nullable = re.fullmatch(r"\$\{var\.(\w+)\}", text)
            if "None" in text or (nullable and module.default(nullable.group(1)) == (True, None)):
                report.fail("environment", where, f"{variable} is required by {function} but may be null ({text})")


# ---- IAM -----------------------------------------------------------------------------------------

WILDCARD_RESOURCE = re.compile(r"^(\*|arn:[^:]*:[^:]*:[^:]*:[^:]*:\*|arn:[^:]*:s3:::\*)$")
WILDCARD_ACTION = re.compile(r"^(\*|[a-z0-9-]+:\*)$")


def statements(document: dict):
    """The statements of a policy document, a dynamic one's once per element of its for_each (when
    that is a list the document's for_each resolved), or its content as written."""
    for statement in blocks(document, "statement"):
        yield statement
    for dynamic in blocks(document, "dynamic"):
        body = dynamic.get("statement", {})
        elements = attr(body, "for_each")
        for content in blocks(body, "content"):
            if isinstance(elements, list):
                for index, element in enumerate(elements):
                    yield resolve(content, {"statement": (index, unwrap(element))})
            else:
                yield content


def as_list(value) -> list:
    value = unwrap(value)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def check_iam(module: Module, report: Report):
    for where, document, _ in module.instances("aws_iam_policy_document", data=True):
        for index, statement in enumerate(statements(document)):
            sid = attr(statement, "sid") or f"statement {index}"
            actions = [str(a) for a in as_list(statement.get("actions"))]
            effect = attr(statement, "effect") or "Allow"
            trust = actions and all(a.startswith("sts:AssumeRole") for a in actions) and "principals" in statement
            if "not_resources" in statement or "not_actions" in statement:
                report.fail("iam", f"{where} ({sid})", "not_resources/not_actions grant everything else")
            resources = [str(r) for r in as_list(statement.get("resources"))]
            if trust:
                continue
            # A dynamic statement over anything but a list the checks can read would go unchecked.
            if any("statement.value." in text for text in [str(sid), *actions, *resources]):
                report.fail("iam", f"{where} ({sid})", "a dynamic statement whose for_each is not a list in a local map: its content cannot be checked")
                continue
            if not resources:
                report.fail("iam", f"{where} ({sid})", "names no resources (that is every resource)")
            for resource in resources:
                # An expression (concat of lists) is checked through the literal ARNs written in it.
                literals = re.findall(r"""['"](arn:[^'"]*|\*)['"]""", resource)
                for candidate in [resource, *literals]:
                    if WILDCARD_RESOURCE.match(candidate):
                        report.fail("iam", f"{where} ({sid})", f"resource {candidate!r} is not scoped")
            if effect == "Allow":
                for action in actions:
                    if WILDCARD_ACTION.match(action):
                        report.fail("iam", f"{where} ({sid})", f"allows the wildcard action {action!r}")
    # Every policy the module writes comes from a policy document above, so the checks cover it.
    for kind, field in [("aws_iam_role_policy", "policy"), ("aws_iam_policy", "policy"), ("aws_s3_bucket_policy", "policy"),
                        ("aws_iam_role", "assume_role_policy"), ("aws_sqs_queue_policy", "policy"), ("aws_sns_topic_policy", "policy")]:
        for name, body in module.resources(kind):
            value = str(attr(body, field))
            if not re.fullmatch(r"\$\{data\.aws_iam_policy_document\.\w+(\[each\.key\]|\[0\])?\.json\}", value):
                report.fail("iam", f"{kind}.{name}", f"{field} must come from an aws_iam_policy_document, is {value!r}")
    for kind in ["aws_iam_role_policy_attachment", "aws_iam_policy_attachment"]:
        for name, _ in module.resources(kind):
            report.fail("iam", f"{kind}.{name}", "attaches a managed policy (their resources are `*`)")
    for name, body in module.resources("aws_iam_role"):
        if "managed_policy_arns" in body:
            report.fail("iam", f"aws_iam_role.{name}", "managed_policy_arns attaches policies with `*` resources")


# ---- schedules -----------------------------------------------------------------------------------

CRON_FIELDS = [
    ("minutes", r"[0-9]|[1-5][0-9]", r"[,\-*/]"),
    ("hours", r"[0-9]|1[0-9]|2[0-3]", r"[,\-*/]"),
    ("day-of-month", r"[1-9]|[12][0-9]|3[01]", r"[,\-*?/LW]"),
    ("month", r"[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC", r"[,\-*/]"),
    ("day-of-week", r"[1-7]|SUN|MON|TUE|WED|THU|FRI|SAT", r"[,\-*?L#]"),
    ("year", r"19[7-9][0-9]|2[01][0-9][0-9]", r"[,\-*/]"),
]


def schedule_problem(expression: str):
    """None when valid for EventBridge Scheduler, else what is wrong."""
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            return "a rate must be at least 1"
        if (value == 1) != (not unit.endswith("s")):
            return f"rate({value} {unit}): the unit is singular for 1 and plural otherwise"
        return None
    cron = re.fullmatch(r"cron\((.*)\)", expression)
    if not cron:
        return "neither rate(N unit) nor cron(...)"
    fields = cron.group(1).split(" ")
    if len(fields) != 6:
        return f"cron takes 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}"
    for (name, value_pattern, _), field in zip(CRON_FIELDS, fields):
        for part in field.split(","):
            token = r"(?:\*|\?|L|(?:%s)(?:-(?:%s))?)(?:/\d+)?(?:W|#[1-5]|L)?" % (value_pattern, value_pattern)
            if not re.fullmatch(token, part):
                return f"cron field {name} {field!r} is not valid"
    if (fields[2] == "?") == (fields[4] == "?"):
        return "cron needs '?' in exactly one of day-of-month and day-of-week"
    return None


def rate_minutes(expression: str):
    rate = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression)
    if not rate:
        return None
    return int(rate.group(1)) * {"minute": 1, "hour": 60, "day": 1440}[rate.group(2)]


def check_schedules(module: Module, example: Module, report: Report):
    functions = module.local("functions") or {}
    schedules = {name: unwrap(entry.get("schedule")) for name, entry in functions.items()
                 if isinstance(entry, dict) and unwrap(entry.get("schedule")) is not None}
    wanted = {"feed_export": 15, "agent_health": 5}
    if set(schedules) != set(wanted):
        report.fail("schedules", "local.functions", f"must schedule exactly {sorted(wanted)}, schedules {sorted(schedules)}")
    # local.schedules, which the schedules and the scheduler's policy iterate: the functions' schedules.
    derived = str(module.local("schedules"))
    if not re.fullmatch(r"\$\{\{for (\w+) , (\w+) in local\.functions : \1 => \2\.schedule if \2\.schedule != None\}\}", derived):
        report.fail("schedules", "local.schedules", f"must be local.functions' non-null schedules, is {derived!r}")
    for name, minutes in wanted.items():
        where = f"aws_scheduler_schedule.function[\"{name}\"]"
        reference = re.fullmatch(r"\$\{var\.(\w+)\}", str(schedules.get(name)))
        if not reference:
            report.fail("schedules", where, f"the expression must be a variable, is {schedules.get(name)!r}")
            continue
        variable = reference.group(1)
        has_default, default = module.default(variable)
        if not has_default:
            report.fail("schedules", f"variable.{variable}", "has no default")
            continue
        problem = schedule_problem(str(default))
        if problem:
            report.fail("schedules", f"variable.{variable}", f"default {default!r}: {problem}")
        elif rate_minutes(str(default)) != minutes:
            report.fail("schedules", f"variable.{variable}", f"default {default!r} is not every {minutes} minutes")
    for name, body in module.resources("aws_scheduler_schedule"):
        where = f"aws_scheduler_schedule.{name}"
        if str(attr(body, "for_each")) != "${local.schedules}" or str(attr(body, "schedule_expression")) != "${each.value}":
            report.fail("schedules", where, "must be one per entry of local.schedules, with its expression")
        target = unwrap(blocks(body, "target")) or {}
        if str(attr(target, "arn")) != "${aws_lambda_function.function[each.key].arn}":
            report.fail("schedules", where, f"must invoke the function of its key, invokes {attr(target, 'arn')!r}")
        if not blocks(target, "retry_policy"):
            report.fail("schedules", where, "has no retry_policy")
        if not blocks(target, "dead_letter_config"):
            report.fail("schedules", where, "has no dead_letter_config")
    # The example may set schedule variables on the module: those values must be valid too.
    for block in example.blocks["module"]:
        for instance, body in block.items():
            for key, value in body.items():
                if key.endswith("_schedule") and isinstance(unwrap(value), str) and not unwrap(value).startswith("${"):
                    problem = schedule_problem(unwrap(value))
                    if problem:
                        report.fail("schedules", f"module.{instance}", f"{key} = {unwrap(value)!r}: {problem}")


# ---- packaging -----------------------------------------------------------------------------------

def check_packaging(root: Path, module: Module, example: Module, report: Report):
    package = root / "scripts/package.sh"
    if not package.exists():
        report.fail("packaging", "scripts/package.sh", "missing: the zips the module deploys come from it")
        return
    script = package.read_text()
    default_arch = re.search(r"^arch=(\S+)", script, re.M)
    packaged_functions = re.search(r"^functions=\(([^)]*)\)", script, re.M)
    if not default_arch:
        report.fail("packaging", "scripts/package.sh", "no default architecture (a line arch=...) found")
    if not packaged_functions or set(packaged_functions.group(1).split()) != set(FUNCTIONS.values()):
        report.fail("packaging", "scripts/package.sh", f"must package {sorted(FUNCTIONS.values())} (a line functions=(...))")
    if "bootstrap.zip" not in script or "target/lambda/" not in script:
        report.fail("packaging", "scripts/package.sh", "no longer writes target/lambda/<function>/bootstrap.zip")
    has_default, architecture = module.default("architecture")
    if default_arch and (not has_default or architecture != default_arch.group(1)):
        report.fail("packaging", "variable.architecture", f"default {architecture!r} is not package.sh's {default_arch.group(1)!r}")
    functions = lambda_functions(module)
    example_variables = example.variables()
    for name, function in FUNCTIONS.items():
        if name not in functions:
            report.fail("packaging", f"aws_lambda_function.function[\"{name}\"]", "missing")
            continue
        where, body, _ = functions[name]
        if attr(body, "runtime") != "provided.al2023":
            report.fail("packaging", where, f"runtime {attr(body, 'runtime')!r}, not provided.al2023 (cargo lambda's target)")
        if attr(body, "handler") != "bootstrap":
            report.fail("packaging", where, f"handler {attr(body, 'handler')!r}, not bootstrap (the binary in the zip)")
        if as_list(body.get("architectures")) != ["${var.architecture}"]:
            report.fail("packaging", where, f"architectures {as_list(body.get('architectures'))!r}, not [var.architecture]")
        zip_variable = f"{name}_zip"
        if attr(body, "filename") != f"${{var.{zip_variable}}}" or attr(body, "source_code_hash") != f"${{filebase64sha256(var.{zip_variable})}}":
            report.fail("packaging", where, f"filename and source_code_hash must come from var.{zip_variable}")
        # The example's default path, from its directory, is where package.sh writes the zip.
        default = unwrap((example_variables.get(zip_variable) or {}).get("default"))
        expected = (root / "target/lambda" / function / "bootstrap.zip").resolve()
        if not isinstance(default, str) or (example.directory / default).resolve() != expected:
            report.fail("packaging", f"examples/complete variable.{zip_variable}", f"default {default!r} is not {expected.relative_to(root)}")
        module_call = [body for block in example.blocks["module"] for body in block.values()]
        for call in module_call:
            if str(unwrap(call.get(zip_variable))) != f"${{var.{zip_variable}}}":
                report.fail("packaging", "examples/complete module", f"{zip_variable} must be passed from var.{zip_variable}")
    # Feed export: one run at a time per corp.
    where, body, _ = functions.get("feed_export", ("aws_lambda_function.function[\"feed_export\"]", {}, None))
    if attr(body, "reserved_concurrent_executions") != 1:
        report.fail("packaging", where, "reserved_concurrent_executions must be 1")


# ---- metrics -------------------------------------------------------------------------------------

def emitted(root: Path, crate: str):
    source = (root / "crates" / crate / "src/metrics.rs").read_text()
    namespace = re.search(r'pub const NAMESPACE: &str = "([^"]+)"', source)
    names = set(re.findall(r'"Name": "(\w+)"', source)) | set(re.findall(r'\("(\w+)",', source))
    return (namespace.group(1) if namespace else None), names


def check_metrics(root: Path, module: Module, report: Report):
    catalogue = dict(emitted(root, crate) for crate in ("feed-export", "agent-health"))
    if None in catalogue:
        report.fail("metrics", "crates/*/src/metrics.rs", "no NAMESPACE constant found")
    schema = str(module.local("feed_metrics_schema"))
    alarms = []  # (where, namespace, metric, [query expressions])
    for name, body in module.resources("aws_cloudwatch_metric_alarm"):
        if "local.alarms" in str(attr(body, "for_each")):
            # One alarm per entry of local.alarms: each field must go where it belongs, then each entry is checked.
            dynamic = [d.get("metric_query") for d in blocks(body, "dynamic") if "metric_query" in d]
            content = unwrap(blocks(unwrap(dynamic) or {}, "content")) if dynamic else {}
            if (attr(body, "namespace"), attr(body, "metric_name")) != ("${each.value.namespace}", "${each.value.metric}") \
                    or "each.value.query" not in str(attr(unwrap(dynamic) or {}, "for_each")) \
                    or attr(content or {}, "expression") != "${metric_query.value.expression}":
                report.fail("metrics", f"aws_cloudwatch_metric_alarm.{name}", "namespace, metric_name and metric_query must be local.alarms' namespace, metric and query")
            entries = module.local("alarms")
            if not isinstance(entries, dict):
                report.fail("metrics", "local.alarms", "must be a literal map of alarms (the checks read it)")
                entries = {}
            for key, alarm in entries.items():
                query = unwrap(alarm.get("query")) or {}
                alarms.append((f'aws_cloudwatch_metric_alarm.{name}["{key}"]', unwrap(alarm.get("namespace")), unwrap(alarm.get("metric")),
                               [str(unwrap(query.get("expression")))] if query else []))
        else:
            alarms.append((f"aws_cloudwatch_metric_alarm.{name}", attr(body, "namespace"), attr(body, "metric_name"),
                           [str(attr(query, "expression")) for query in blocks(body, "metric_query")]))
    for where, namespace, metric, expressions in alarms:
        if isinstance(namespace, str) and namespace.startswith("SigsciKit/"):
            if metric not in catalogue.get(namespace, set()):
                report.fail("metrics", where, f"{namespace} {metric!r} is not a metric the code emits")
        for expression in expressions:
            if "local.feed_metrics_schema" in expression:
                expression = expression.replace("${local.feed_metrics_schema}", schema)
            match = re.search(r'SELECT \w+\((\w+)\) FROM SCHEMA\(\\?"([^"\\]+)\\?"', expression)
            if "SELECT" in expression and not match:
                report.fail("metrics", where, f"cannot read the metric of {expression!r}")
            if match and match.group(1) not in catalogue.get(match.group(2), set()):
                report.fail("metrics", where, f"{match.group(2)} {match.group(1)!r} is not a metric the code emits")


# ---- docs ----------------------------------------------------------------------------------------

def check_docs(terraform: Path, module: Module, report: Report):
    """terraform/README.md names every input and output."""
    readme = terraform / "README.md"
    text = readme.read_text() if readme.exists() else ""
    outputs = []
    for path in sorted(terraform.glob("*.tf")):
        with path.open() as handle:
            outputs += [name for block in hcl2.load(handle).get("output", []) for name in block]
    def table(heading: str) -> str:  # the table rows of one section
        section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0] if f"## {heading}\n" in text else ""
        return "\n".join(line for line in section.splitlines() if line.startswith("|"))

    inputs, documented_outputs = table("Inputs"), table("Outputs")
    for name in module.variables():
        if f"| `{name}` |" not in inputs:
            report.fail("docs", f"variable.{name}", "has no row in terraform/README.md's Inputs")
    for name in outputs:
        if f"`{name}`" not in documented_outputs:
            report.fail("docs", f"output.{name}", "is not in terraform/README.md's Outputs")


# ---- OCSF ----------------------------------------------------------------------------------------

def check_ocsf(module: Module, report: Report):
    """The OCSF table reads where the exporter writes (its Hive layout under the feed prefix, Parquet),
    the custom source registers HTTP Activity, and only the exporter's role may write to the lake."""
    tables = dict(module.resources("aws_glue_catalog_table"))
    table = tables.get("ocsf")
    if table is None:
        report.fail("ocsf", "aws_glue_catalog_table.ocsf", "missing")
    else:
        # parameters is a merge(…) expression: its text holds the template.
        found = re.search(r"storage\.location\.template'?\"?\s*[:=]\s*'?\"?([^'\"]+)", str(attr(table, "parameters")))
        template = found.group(1) if found else ""
        if not re.search(r"/\$\{var\.feed_prefix\}/ocsf/corp=\$+\{corp\}/site=\$+\{site\}/dt=\$+\{dt\}/hour=\$+\{hour\}/$", template):
            report.fail("ocsf", "aws_glue_catalog_table.ocsf", f"storage.location.template {template!r} is not the exporter's Hive layout under {{feed_prefix}}/ocsf/")
        serde = str(attr(unwrap(blocks(unwrap(blocks(table, "storage_descriptor")) or {}, "ser_de_info")) or {}, "serialization_library"))
        if "parquet" not in serde.lower():
            report.fail("ocsf", "aws_glue_catalog_table.ocsf", f"reads with {serde!r}, not a Parquet SerDe")
    sources = dict(module.resources("aws_securitylake_custom_log_source"))
    source = sources.get("feed")
    if source is None:
        report.fail("ocsf", "aws_securitylake_custom_log_source.feed", "missing")
    elif [str(c) for c in as_list(attr(source, "event_classes"))] != ["HTTP_ACTIVITY"]:
        report.fail("ocsf", "aws_securitylake_custom_log_source.feed", f"event_classes {attr(source, 'event_classes')!r}: the exporter writes HTTP Activity (4002) only")
    for name, body in module.resources("aws_iam_role_policy"):
        if "security_lake" in str(attr(body, "policy")) and str(attr(body, "role")) != '${aws_iam_role.function["feed_export"].id}':
            report.fail("ocsf", f"aws_iam_role_policy.{name}", f"gives the lake's prefix to {attr(body, 'role')!r}, not the feed exporter's role")


def check_ocsf_role(module: Module, report: Report):
    """sts:AssumeRole is granted on exactly the ARN the feed exporter's SIGSCI_KIT_OCSF_ROLE_ARN
    names, in a policy on the feed exporter's role, and only when the function is given that ARN."""
    _, _, entry = lambda_functions(module).get("feed_export", (None, None, None))
    environment = unwrap((entry or {}).get("environment")) or {}
    role = environment.get("SIGSCI_KIT_OCSF_ROLE_ARN") if isinstance(environment, dict) else None
    role = None if role is None else str(role)
    feed_role = '${aws_iam_role.function["feed_export"].id}'
    attached = {}
    for name, body in module.resources("aws_iam_role_policy"):
        found = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)(\[each\.key\]|\[0\])?\.json\}", str(attr(body, "policy")))
        if found:
            attached.setdefault(found.group(1), []).append((name, str(attr(body, "role"))))
    granted = False
    failures_before = len(report.failures)
    for where, document, _ in module.instances("aws_iam_policy_document", data=True):
        for index, statement in enumerate(statements(document)):
            actions = [str(a) for a in as_list(statement.get("actions"))]
            if "principals" in statement or not any(a.lower().startswith("sts:assumerole") for a in actions):
                continue  # a trust policy, or no role assumption
            sid = attr(statement, "sid") or f"statement {index}"
            resources = [str(r) for r in as_list(statement.get("resources"))]
            if role is None or resources != [role]:
                report.fail("ocsf", f"{where} ({sid})", f"allows sts:AssumeRole on {resources!r}, not exactly the feed exporter's SIGSCI_KIT_OCSF_ROLE_ARN ({role!r})")
                continue
            name = where.split(".")[-1].split("[")[0]
            for policy, holder in attached.get(name, []):
                if holder != feed_role:
                    report.fail("ocsf", f"aws_iam_role_policy.{policy}", f"gives {holder!r} the OCSF role, not the feed exporter's role")
                else:
                    granted = True
    # A wrong grant above already says why the right one is missing.
    if role is not None and not granted and len(report.failures) == failures_before:
        report.fail("ocsf", 'aws_lambda_function.function["feed_export"]', f"assumes {role} (SIGSCI_KIT_OCSF_ROLE_ARN) but its role may not sts:AssumeRole it")


# ---- driver --------------------------------------------------------------------------------------

def run(root: Path, terraform: Path) -> list:
    module = Module(terraform)
    example = Module(terraform / "examples/complete")
    report = Report()
    check_environment(root, module, report)
    check_iam(module, report)
    check_schedules(module, example, report)
    check_packaging(root, module, example, report)
    check_metrics(root, module, report)
    check_docs(terraform, module, report)
    check_ocsf(module, report)
    check_ocsf_role(module, report)
    return report.failures


# Each mutation breaks one thing on purpose; the named check must then fail on the named resource.
MUTATIONS = [
    ("environment", "main.tf", "        SIGSCI_KIT_RULES_URL = local.rules_location\n      }\n",
     "        SIGSCI_KIT_RULES_URL = local.rules_location\n        SIGSCI_KIT_UNREAD    = \"x\"\n      }\n", 'aws_lambda_function.function["ack_url"]'),
    ("environment", "main.tf", "        SIGSCI_KIT_FEED_LOCATION      = local.feed_location\n", "", 'aws_lambda_function.function["feed_export"]'),
    ("environment", "main.tf", "        SIGSCI_KIT_STATE     = local.state_location\n", "        SIGSCI_KIT_STATE     = var.api_url\n", 'aws_lambda_function.function["ack_url"]'),
    ("iam", "iam.tf", "resources = [\"${local.bucket_arn}/${var.feed_prefix}/*\"]", "resources = [\"*\"]", 'data.aws_iam_policy_document.function["feed_export"]'),
    ("iam", "iam.tf", "actions = [\"s3:GetObject\"]", "actions = [\"s3:*\"]", 'data.aws_iam_policy_document.function["agent_health"]'),
    ("iam", "iam.tf", "      bucket = [\n        { sid = \"State\", actions = [\"s3:GetObject\", \"s3:PutObject\"]",
     "      bucket = var.tags == {} ? [] : [\n        { sid = \"State\", actions = [\"s3:GetObject\", \"s3:PutObject\"]", 'data.aws_iam_policy_document.function["ack_url"]'),
    ("iam", "iam.tf", "secrets     = concat([aws_secretsmanager_secret.this[\"ack_key\"].arn, aws_secretsmanager_secret.this[\"channels\"].arn]", "secrets     = concat([\"arn:aws:secretsmanager:*:*:*\"]", 'data.aws_iam_policy_document.function["ack_url"]'),
    ("schedules", "variables.tf", "default     = \"rate(15 minutes)\"", "default     = \"rate(15 minute)\"", "variable.feed_export_schedule"),
    ("schedules", "variables.tf", "default     = \"rate(5 minutes)\"", "default     = \"cron(0/5 * * * * *)\"", "variable.agent_health_schedule"),
    ("schedules", "schedules.tf", "arn      = aws_lambda_function.function[each.key].arn", "arn      = aws_lambda_function.function[\"feed_export\"].arn", "aws_scheduler_schedule.function"),
    ("packaging", "functions.tf", "runtime                        = \"provided.al2023\"", "runtime                        = \"provided.al2\"", 'aws_lambda_function.function['),
    ("packaging", "main.tf", "zip         = var.agent_health_zip", "zip         = var.ack_url_zip", 'aws_lambda_function.function["agent_health"]'),
    ("packaging", "examples/complete/variables.tf", "target/lambda/ack-url/bootstrap.zip", "target/lambda/ack-url.zip", "variable.ack_url_zip"),
    ("metrics", "alarms.tf", "SUM(HoursLost)", "SUM(HoursGone)", 'aws_cloudwatch_metric_alarm.this["hours_lost"]'),
    ("metrics", "alarms.tf", "metric       = \"RunDuration\"", "metric       = \"RunDurations\"", 'aws_cloudwatch_metric_alarm.this["health_heartbeat"]'),
    ("docs", "README.md", "| `ack_key_version` |", "| ack_key_version |", "variable.ack_key_version"),
    ("docs", "README.md", "| `security_lake` |", "| security_lake |", "variable.security_lake"),
    ("iam", "ocsf.tf", "resources = [\"arn:${local.partition}:s3:::${local.lake_bucket}/ext/${var.security_lake.source_name}/*\"]",
     "resources = [\"arn:${local.partition}:s3:::*\"]", "data.aws_iam_policy_document.security_lake"),
    ("environment", "main.tf", "        SIGSCI_KIT_OCSF_SOURCE     = local.security_lake ? var.security_lake.source_name : null\n",
     "        SIGSCI_KIT_OCSF_SOURCE     = local.security_lake ? var.security_lake.source_name : null\n        SIGSCI_KIT_OCSF_BUCKET     = local.lake_bucket\n",
     'aws_lambda_function.function["feed_export"]'),
    ("ocsf", "ocsf.tf", "/ocsf/corp=$${corp}/site=$${site}", "/corp=$${corp}/site=$${site}", "aws_glue_catalog_table.ocsf"),
    ("ocsf", "ocsf.tf", "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe", "org.openx.data.jsonserde.JsonSerDe", "aws_glue_catalog_table.ocsf"),
    ("ocsf", "ocsf.tf", "event_classes  = [\"HTTP_ACTIVITY\"]", "event_classes  = [\"HTTP_ACTIVITY\", \"FILE_ACTIVITY\"]", "aws_securitylake_custom_log_source.feed"),
    ("ocsf", "ocsf.tf", "role   = aws_iam_role.function[\"feed_export\"].id", "role   = aws_iam_role.function[\"agent_health\"].id", "aws_iam_role_policy.security_lake"),
    ("ocsf", "ocsf.tf", "resources = [var.ocsf_role_arn]", "resources = [\"arn:${local.partition}:iam::${local.account_id}:role/*\"]",
     "data.aws_iam_policy_document.ocsf_role"),
    ("ocsf", "main.tf", "        SIGSCI_KIT_OCSF_ROLE_ARN   = var.ocsf_role_arn\n", "", "data.aws_iam_policy_document.ocsf_role"),
    ("ocsf", "main.tf", "        SIGSCI_KIT_OCSF_ROLE_ARN   = var.ocsf_role_arn\n",
     "        SIGSCI_KIT_OCSF_ROLE_ARN   = var.security_lake.crawler_role_arn\n", "data.aws_iam_policy_document.ocsf_role"),
    ("ocsf", "ocsf.tf", "name   = \"ocsf-assume-role\"\n  role   = aws_iam_role.function[\"feed_export\"].id",
     "name   = \"ocsf-assume-role\"\n  role   = aws_iam_role.function[\"agent_health\"].id", "aws_iam_role_policy.ocsf_role"),
    ("ocsf", "ocsf.tf", "policy = data.aws_iam_policy_document.ocsf_role[0].json", "policy = data.aws_iam_policy_document.security_lake[0].json",
     'aws_lambda_function.function["feed_export"]'),
]


def scratch_root(root: Path, scratch: str) -> Path:
    """A copy of terraform/ beside links to what the checks read (docs, crates, scripts)."""
    copy = Path(scratch)
    shutil.copytree(root / "terraform", copy / "terraform", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "*.tfvars"))
    for name in ("docs", "crates", "scripts"):
        (copy / name).symlink_to(root / name)
    return copy


def self_test(root: Path) -> int:
    problems = 0
    with tempfile.TemporaryDirectory() as scratch:
        failures = run(scratch_root(root, scratch), Path(scratch) / "terraform")
        if failures:
            print(f"self-test FAILED: the unchanged copy fails: {failures}", file=sys.stderr)
            return len(MUTATIONS)
    for check, file, old, new, resource in MUTATIONS:
        with tempfile.TemporaryDirectory() as scratch:
            copy = scratch_root(root, scratch)
            target = copy / "terraform" / file
            text = target.read_text()
            if old not in text:
                print(f"self-test FAILED: {file} no longer contains {old!r}; update MUTATIONS", file=sys.stderr)
                problems += 1
                continue
            target.write_text(text.replace(old, new, 1))
            failures = run(copy, copy / "terraform")
            caught = [f for f in failures if f.startswith(f"{check}:") and resource in f]
            if caught and len(caught) == len(failures):
                print(f"self-test ok: {caught[0]}")
            else:
                print(f"self-test FAILED: {check} on {resource} for {file}: {old.strip()!r} -> {new.strip()!r}; got {failures}", file=sys.stderr)
                problems += 1
    return problems


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    if "--self-test" in sys.argv[2:]:
        problems = self_test(root)
        print(f"{len(MUTATIONS) - problems} passed, {problems} failed")
        return 1 if problems else 0
    failures = run(root, root / "terraform")
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if failures:
        print(f"structure: {len(failures)} problem(s)", file=sys.stderr)
        return 1
    print("structure: environment, IAM scoping, schedules, packaging, metrics and docs as required")
    return 0


if __name__ == "__main__":
    sys.exit(main())
