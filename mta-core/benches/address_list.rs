//! Address-list parsing: ours against mail-parser's on the same realistic To:/Cc: values
//! (display names, quoted names, comments, groups, encoded words, folding).
//!
//! Run: `cargo bench -p mta-core --bench address_list -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mail_parser::parsers::MessageStream;
use mta_core::address_list::{ParseOptions, parse_address_list};
use std::hint::black_box;

/// Field values as they appear after `To:`/`Cc:`, each ending in CRLF.
const INPUTS: &[&str] = &[
    "Mary Smith <mary@example.net>\r\n",
    "\"Joe Q. Public\" <john.q.public@example.com>, Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n",
    "<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\r\n",
    "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n",
    "Undisclosed recipients:;\r\n",
    "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n",
    "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)\r\n",
    "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>, =?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@example.ru>\r\n",
    "\"Dev Team\" <dev@lists.example.org>, alice.wonderland+mail@example.com, \"Bob (work)\" <bob@corp.example.com>,\r\n \"Carol O'Brien\" <carol@example.ie>, dave@example.net (Dave), Eve <eve@example.org>\r\n",
    "team: alice@example.com, bob@example.com, carol@example.com;, \"Sales\" <sales@example.com>, support@example.com\r\n",
];

fn bench(c: &mut Criterion) {
    let total: usize = INPUTS.iter().map(|s| s.len()).sum();
    let mut g = c.benchmark_group("address_list");
    g.throughput(Throughput::Bytes(total as u64));
    let strict = ParseOptions::strict();
    // Both parsers must accept every input, or the comparison would be unfair.
    for s in INPUTS {
        parse_address_list(s.as_bytes(), &strict).unwrap();
        assert!(
            MessageStream::new(s.as_bytes())
                .parse_address()
                .as_address()
                .is_some()
        );
    }
    g.bench_function("mta-core", |b| {
        b.iter(|| {
            for s in INPUTS {
                black_box(parse_address_list(black_box(s.as_bytes()), &strict).unwrap());
            }
        });
    });
    g.bench_function("mail-parser", |b| {
        b.iter(|| {
            for s in INPUTS {
                black_box(MessageStream::new(black_box(s.as_bytes())).parse_address());
            }
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
