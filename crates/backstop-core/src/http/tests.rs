use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use crate::protocol::Request;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_flat_request_keeps_every_header_byte_for_byte() {
    let mut headers = http::HeaderMap::new();
    headers.append("accept", "text/html".parse().unwrap());
    headers.append("x-many", "one".parse().unwrap());
    headers.append("x-many", "two".parse().unwrap());
    // Not UTF-8, empty, and large values survive as bytes.
    headers.append(
        "x-binary",
        http::HeaderValue::from_bytes(&[0xff, 0xfe, b'a']).unwrap(),
    );
    headers.append("x-empty", http::HeaderValue::from_static(""));
    let big = "v".repeat(100_000);
    headers.append("x-big", big.parse().unwrap());
    let uri: http::Uri = "https://shop.example:8443/cart/%E2%82%AC?q=a%20b&x"
        .parse()
        .unwrap();
    let flat = FlatRequest::from_http(&uri, b"id-1", &headers);
    assert_eq!(
        flat.uri(),
        "https://shop.example:8443/cart/%E2%82%AC?q=a%20b&x"
    );
    assert_eq!(flat.request_id(), b"id-1");
    let ours: Vec<(&str, &[u8])> = flat.headers().collect();
    let theirs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(flat.header("X-Many"), Some(&b"one"[..]));
    assert_eq!(flat.header("x-missing"), None);

    // An id set afterwards (the incoming one, found while copying) replaces it and
    // leaves the rest as it was.
    let mut flat = flat;
    flat.set_request_id(b"incoming-7");
    assert_eq!(flat.request_id(), b"incoming-7");
    assert_eq!(flat.headers().collect::<Vec<_>>(), theirs);
    assert_eq!(
        flat.uri(),
        "https://shop.example:8443/cart/%E2%82%AC?q=a%20b&x"
    );
    flat.set_request_id(b"");
    assert_eq!(flat.request_id(), b"");
    assert_eq!(flat.headers().count(), theirs.len());

    // Origin-form URIs (what HTTP/1 servers see) are kept as they came.
    let flat = FlatRequest::from_http(&"/a?b=c".parse().unwrap(), b"", &http::HeaderMap::new());
    assert_eq!(flat.uri(), "/a?b=c");
    assert_eq!(flat.headers().count(), 0);
}

#[test]
fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let http = HttpOptions::new()
        .trust_proxy("10.0.0.0/8".parse::<IpNet>().unwrap())
        .trust_proxy(ip("192.0.2.7"));
    let xff = Some(b"203.0.113.5, 10.1.1.1".as_slice());
    // An untrusted peer's claims are ignored.
    assert_eq!(
        http.client_ip(Some(ip("198.51.100.9")), xff, None),
        Some(ip("198.51.100.9"))
    );
    // A trusted peer: walk right to left past trusted hops.
    assert_eq!(
        http.client_ip(Some(ip("10.0.0.2")), xff, None),
        Some(ip("203.0.113.5"))
    );
    // A spoofed left-most entry does not win over the first untrusted hop.
    let spoofed = Some(b"1.2.3.4, 203.0.113.5, 10.1.1.1".as_slice());
    assert_eq!(
        http.client_ip(Some(ip("10.0.0.2")), spoofed, None),
        Some(ip("203.0.113.5"))
    );
    // RFC 7239, with ports and brackets.
    let fwd = Some(br#"for="[2001:db8::1]:4711";proto=https, for=10.9.9.9"#.as_slice());
    assert_eq!(
        http.client_ip(Some(ip("192.0.2.7")), None, fwd),
        Some(ip("2001:db8::1"))
    );
    // Garbage is ignored; the peer stands.
    assert_eq!(
        http.client_ip(
            Some(ip("10.0.0.2")),
            Some(b"\xff, nonsense".as_slice()),
            None
        ),
        Some(ip("10.0.0.2"))
    );
    // IPv4-mapped IPv6 peers match IPv4 networks.
    assert_eq!(
        http.client_ip(Some(ip("::ffff:10.0.0.2")), xff, None),
        Some(ip("203.0.113.5"))
    );
    assert_eq!(http.client_ip(None, xff, None), None);
}

#[test]
fn request_ids() {
    assert!(is_valid_request_id(b"abc-123"));
    assert!(is_valid_request_id(b"trace:abc/1+2=3"));
    assert!(!is_valid_request_id(b""));
    assert!(!is_valid_request_id(b"has space"));
    assert!(!is_valid_request_id(b"\x00evil"));
    assert!(!is_valid_request_id(b"<script>"));
    assert!(!is_valid_request_id(&[b'a'; 200]));
    let id = new_request_id();
    assert!(is_valid_request_id(&id), "a new id is itself valid");
    assert!(
        id.iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(new_request_id(), new_request_id());
    let ids: Vec<_> = (0..300).map(|_| new_request_id_bytes()).collect();
    assert!(
        ids.iter()
            .all(|id| id.len() == 32 && is_valid_request_id(id))
    );
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "ids from one block and across blocks differ"
    );
}

#[test]
fn page_decisions() {
    let http = HttpOptions::new();
    let replace = |detail| PageDecision::Replace {
        detail_from_body: detail,
    };
    assert_eq!(http.page_decision(200, None, Some(0)), PageDecision::Keep);
    assert_eq!(http.page_decision(404, None, Some(0)), replace(false));
    assert_eq!(
        http.page_decision(405, None, None),
        PageDecision::Keep,
        "unknown body, no type"
    );
    assert_eq!(
        http.page_decision(422, Some(b"text/plain; charset=utf-8"), Some(30)),
        replace(true)
    );
    assert_eq!(
        http.page_decision(500, Some(b"text/html"), Some(30)),
        PageDecision::Keep
    );
    let always = HttpOptions::new().page_policy(PagePolicy::always());
    assert_eq!(
        always.page_decision(500, Some(b"application/json"), Some(30)),
        replace(false)
    );
    let never = HttpOptions::new().page_policy(PagePolicy::never());
    assert_eq!(never.page_decision(404, None, Some(0)), PageDecision::Keep);
    let mixed = HttpOptions::new().page_policy(PagePolicy::default().status(404, PageRule::Always));
    assert_eq!(
        mixed.page_decision(404, Some(b"application/json"), Some(2)),
        replace(false)
    );
    assert_eq!(
        mixed.page_decision(500, Some(b"application/json"), Some(2)),
        PageDecision::Keep
    );
}

#[test]
fn body_capture_only_for_json_and_forms() {
    let off = HttpOptions::new();
    assert_eq!(off.body_limit_for(Some(b"application/json")), None);
    let on = HttpOptions::new().capture_bodies(1024);
    assert_eq!(
        on.body_limit_for(Some(b"application/json; charset=utf-8")),
        Some(1024)
    );
    assert_eq!(
        on.body_limit_for(Some(b"application/problem+json")),
        Some(1024)
    );
    assert_eq!(
        on.body_limit_for(Some(b"application/x-www-form-urlencoded")),
        Some(1024)
    );
    assert_eq!(
        on.body_limit_for(Some(b"multipart/form-data; boundary=x")),
        None
    );
    assert_eq!(on.body_limit_for(None), None);
}

#[test]
fn builds_the_request_context() {
    let parts = RequestParts {
        method: "GET",
        scheme: "http",
        host: None,
        path: "/users/7",
        query: Some("tab=posts"),
        version: "HTTP/1.1",
        client_ip: Some(ip("203.0.113.5")),
        request_id: Some("r1"),
    };
    let headers: Vec<(&str, &[u8])> = vec![
        ("Host", b"shop.test"),
        ("Accept", b"text/html"),
        ("Accept", b"*/*"),
        ("Cookie", b"a=1"),
        ("X-Odd", b"\xffok"),
    ];
    let request = build_request(&parts, headers);
    assert_eq!(
        request.url.as_deref(),
        Some("http://shop.test/users/7?tab=posts")
    );
    assert_eq!(request.headers["accept"], "text/html, */*");
    assert_eq!(request.headers["x-odd"], "\u{fffd}ok");
    assert_eq!(request.cookies.as_deref(), Some("a=1"));
    assert_eq!(request.env["REMOTE_ADDR"], "203.0.113.5");
    assert_eq!(request.env["REQUEST_ID"], "r1");
    assert_eq!(request.query_string.as_deref(), Some("tab=posts"));
}

#[test]
fn request_facts_build_every_uri_form_as_the_uri_parser_reads_it() {
    for given in [
        "/users/7?tab=posts",
        "/users/7",
        "/search?",
        "/a?b=c?d",
        "/",
        "https://shop.example:8443/cart?step=2",
        "http://shop.example",
        "*",
    ] {
        let flat = FlatRequest::new(&[given], b"id-9", || {
            [("host", &b"from-header.test"[..])].into_iter()
        });
        let facts = RequestFacts {
            method: "GET",
            scheme: "https",
            version: "HTTP/1.1",
            client_ip: None,
            flat: flat.view(),
            body: None,
        };
        let uri: http::Uri = given.parse().unwrap();
        let expected = build_request(
            &RequestParts {
                method: "GET",
                scheme: uri.scheme_str().unwrap_or("https"),
                host: uri.authority().map(|a| a.as_str()),
                path: uri.path(),
                query: uri.query(),
                version: "HTTP/1.1",
                client_ip: None,
                request_id: Some("id-9"),
            },
            flat.headers(),
        );
        assert_eq!(facts.build(), expected, "{given}");
    }
    let flat = FlatRequest::new(&["/users/7?tab=posts"], b"", std::iter::empty);
    let built = RequestFacts {
        method: "GET",
        scheme: "http",
        version: "HTTP/1.1",
        client_ip: None,
        flat: flat.view(),
        body: None,
    }
    .build();
    assert_eq!(
        built.url.as_deref(),
        Some("http://localhost/users/7?tab=posts")
    );
    assert_eq!(built.query_string.as_deref(), Some("tab=posts"));
}

#[test]
fn a_requests_page_path_leaves_out_scheme_and_host() {
    for (given, path) in [
        ("/cart?step=2", "/cart?step=2"),
        ("https://shop.example:8443/cart?step=2", "/cart?step=2"),
        ("http://shop.example", "/"),
    ] {
        let request = HttpRequest {
            method: http::Method::GET,
            scheme: "https",
            version: "HTTP/1.1",
            client_ip: None,
            flat: FlatRequest::new(&[given], b"", std::iter::empty),
            body: None,
        };
        assert_eq!(request.path_and_query(), path, "{given}");
    }
}

#[test]
fn response_events() {
    let event = status_event(503, "GET", Some("/health"));
    let exc = &event.exception.values[0];
    assert_eq!(exc.ty, "ServiceUnavailable");
    assert_eq!(
        exc.value.as_deref(),
        Some("GET /health responded 503 Service Unavailable")
    );
    let mechanism = exc.mechanism.as_ref().unwrap();
    assert_eq!(
        (mechanism.handled, mechanism.synthetic),
        (Some(false), Some(true))
    );
    assert_eq!(event.tags["http.status_code"], "503");

    let err = "x".parse::<u8>().unwrap_err();
    let event = error_response_event(&err, 500);
    assert_eq!(event.exception.values[0].ty, "ParseIntError");
    assert_eq!(
        event.exception.values[0].mechanism.as_ref().unwrap().ty,
        "http"
    );
}

#[test]
fn user_agents_become_contexts() {
    let mut request = Request::default();
    request.headers.insert(
        "user-agent".into(),
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36".into(),
    );
    let mut contexts = BTreeMap::new();
    user_agent_contexts(&request, &mut contexts);
    assert_eq!(contexts["browser"]["name"], "Chrome");
    assert_eq!(contexts["os"]["name"], "Windows 10");
    assert_eq!(contexts["device"]["family"], "pc");
}

#[test]
fn the_scheme_follows_tls_and_trusted_proxies_only() {
    let http = HttpOptions::new().trust_proxy(ip("10.0.0.2"));
    let headers = |list: &'static [(&'static str, &'static [u8])]| {
        move |name: &'static str| list.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    };
    let none = headers(&[]);
    // The connection itself.
    assert_eq!(
        http.client_and_scheme(Some(ip("203.0.113.5")), false, none),
        (Some(ip("203.0.113.5")), "http")
    );
    assert_eq!(
        http.client_and_scheme(Some(ip("203.0.113.5")), true, none),
        (Some(ip("203.0.113.5")), "https")
    );
    assert_eq!(http.client_and_scheme(None, true, none), (None, "https"));
    // An untrusted peer's claims are ignored.
    let claims = headers(&[
        ("x-forwarded-proto", b"https"),
        ("x-forwarded-for", b"198.51.100.1"),
    ]);
    assert_eq!(
        http.client_and_scheme(Some(ip("203.0.113.5")), false, claims),
        (Some(ip("203.0.113.5")), "http")
    );
    // A trusted proxy's are believed.
    assert_eq!(
        http.client_and_scheme(Some(ip("10.0.0.2")), false, claims),
        (Some(ip("198.51.100.1")), "https")
    );
    let list = headers(&[("x-forwarded-proto", b"HTTPS, http")]);
    assert_eq!(
        http.client_and_scheme(Some(ip("10.0.0.2")), false, list).1,
        "https"
    );
    // `Forwarded`: the scheme of the client's own hop, and it wins over the others.
    let forwarded = headers(&[
        (
            "forwarded",
            b"for=198.51.100.1;proto=https, for=10.0.0.2;proto=http",
        ),
        ("x-forwarded-proto", b"http"),
    ]);
    assert_eq!(
        http.client_and_scheme(Some(ip("10.0.0.2")), false, forwarded),
        (Some(ip("198.51.100.1")), "https")
    );
    let garbage = headers(&[
        ("forwarded", b"\xff;proto=https"),
        ("x-forwarded-proto", b"\xff"),
    ]);
    assert_eq!(
        http.client_and_scheme(Some(ip("10.0.0.2")), false, garbage),
        (Some(ip("10.0.0.2")), "http")
    );
}

#[test]
fn static_routes_are_remembered_and_dynamic_ones_matched_each_time() {
    let routes = StaticRoutes::default();
    let first = routes.route("/hello", || Some("/hello".into()));
    assert_eq!(first.as_deref(), Some("/hello"));
    let again = routes.route("/hello", || {
        panic!("a known static route is not matched again")
    });
    assert_eq!(again.as_deref(), Some("/hello"));
    for path in ["/users/7", "/users/8", "/users/7"] {
        let mut asked = false;
        let route = routes.route(path, || {
            asked = true;
            Some("/users/{id}".into())
        });
        assert_eq!(route.as_deref(), Some("/users/{id}"));
        assert!(asked, "{path} is matched each time");
    }
    assert_eq!(routes.route("/nope", || None).as_deref(), None);
    assert_eq!(routes.len(), 1, "only the static route is kept");
}
