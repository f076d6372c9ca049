/* falcoir.core.parse._speedups: the text-alert fast path of iter_parse, in C.
 *
 * text_alert(line, lineno) builds the same Alert as the pure-Python
 * falcoir.core.parse.build.text_alert (no rules file) for the common case, and returns
 * None for every line it does not take: then the caller runs the pure-Python path,
 * which stays the reference implementation. Tests compare both on the corpus, the
 * benchmark's log and generated lines.
 *
 * Taken: lines of at most MAX_LINE characters (longer ones could make the scanners
 * below quadratic, like the regular expressions they stand for), every character printable ASCII
 * (0x20..0x7e), no "{", with an alert anchor ("<time>: <Priority> "). Under that
 * restriction the regular expressions of textline.py / pairs.py / normalize.py are
 * exact hand-written scanners: \s is " ", \w is [A-Za-z0-9_], str.strip() strips " ".
 *
 * Everything is bounds-checked: AT(i) reads 0 past the end, and 0 never matches.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SPEEDUPS_VERSION 2
#define MAX_LINE 16384
#define MAX_PAIRS 256
#define NSLOTS 18

enum {
    S_NAME, S_CMDLINE, S_PID, S_VPID, S_PPID, S_EXEPATH, S_CWD, S_USER, S_PARENT,
    S_CID, S_FULL_ID, S_CNAME, S_IMAGE, S_IMAGE_TAG, S_NS, S_POD, S_POD_UID,
    S_EXEC_COMMAND
};

/* ---- configuration (set once by falcoir.core.parse.accel) ------------------------ */

static PyObject *cls_alert, *cls_process, *cls_container, *cls_k8s, *cls_connection;
static PyObject *slots_map;    /* name -> (slot index, rank) */
static PyObject *empty_tuple;

typedef struct { char *s; Py_ssize_t n; } Word;
typedef struct {
    Word *words;
    Py_ssize_t count;
    uint64_t bloom[4]; /* by (length, first, last character): most misses cost no scan */
} WordSet;
static WordSet known_keys, free_keys;

static inline unsigned bloom_bit(const char *p, Py_ssize_t len) {
    if (len <= 0) return 0;
    return (unsigned)(len * 7 + (unsigned char)p[0] * 3 + (unsigned char)p[len - 1]) & 255u;
}

enum {
    K_RESOURCE,
    K_VERB,
    K_ACTION,
    K_KA_TARGET_RESOURCE,
    K_KA_USER_NAME,
    K_PROC_CMDLINE,
    K_COMMAND,
    K_KA_TARGET_NAME,
    K_USER,
    K_PROC_DOT_PID,
    K_PROC_PID,
    K_PID,
    K__CONTAINER_INFO,
    K_CONTAINER,
    K_FD_DOT_NAME,
    K_FILE,
    K_FD_NAME,
    K_FILENAME,
    K_CONNECTION,
    K_FD_RIP,
    K_FD_RPORT,
    K_FD_RIP_NAME,
    K_FD_SIP_NAME,
    K___DICT__,
    K_RAW,
    K_SOURCE_FORMAT,
    K_TIME,
    K_PRIORITY,
    K_RULE,
    K_MESSAGE,
    K_OUTPUT,
    K_OUTPUT_STYLE,
    K_FIELDS,
    K_PROCESS,
    K_K8S,
    K_NODE,
    K_TAGS,
    K_SOURCE,
    K_UUID,
    K_EVENT_TIME_NS,
    K_LINE,
    K_END_LINE,
    K_EXEC_COMMAND,
    K_OUTPUT_FIELDS,
    K_TRUNCATED,
    K_WRAPPER,
    K_NAME,
    K_CMDLINE,
    K_VPID,
    K_EXEPATH,
    K_CWD,
    K_PARENT,
    K_PPID,
    K_ID,
    K_FULL_ID,
    K_IMAGE,
    K_IMAGE_TAG,
    K_NAMESPACE,
    K_POD,
    K_POD_UID,
    K_CLIENT_IP,
    K_CLIENT_PORT,
    K_SERVER_IP,
    K_SERVER_PORT,
    K_REMOTE_IP,
    K_REMOTE_PORT,
    K_REMOTE_NAME,
    K_TID,
    K_COUNT
};
static const char *const KEY_TEXT[K_COUNT] = {
    "resource",
    "verb",
    "action",
    "ka.target.resource",
    "ka.user.name",
    "proc.cmdline",
    "command",
    "ka.target.name",
    "user",
    "proc.pid",
    "proc_pid",
    "pid",
    "%container.info",
    "container",
    "fd.name",
    "file",
    "fd_name",
    "filename",
    "connection",
    "fd.rip",
    "fd.rport",
    "fd.rip.name",
    "fd.sip.name",
    "__dict__",
    "raw",
    "source_format",
    "time",
    "priority",
    "rule",
    "message",
    "output",
    "output_style",
    "fields",
    "process",
    "k8s",
    "node",
    "tags",
    "source",
    "uuid",
    "event_time_ns",
    "line",
    "end_line",
    "exec_command",
    "output_fields",
    "truncated",
    "wrapper",
    "name",
    "cmdline",
    "vpid",
    "exepath",
    "cwd",
    "parent",
    "ppid",
    "id",
    "full_id",
    "image",
    "image_tag",
    "namespace",
    "pod",
    "pod_uid",
    "client_ip",
    "client_port",
    "server_ip",
    "server_port",
    "remote_ip",
    "remote_port",
    "remote_name",
    "tid",
};
static PyObject *KEY[K_COUNT];

/* interned constants */
static PyObject *str_empty, *str_text, *str_info_key, *str_pipe, *str_paren, *str_bare,
    *str_internal, *str_k8s_audit, *str_pods;
static PyObject *prio_out[9];
static const char *const PRIO_WORDS[9] = {
    "Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational",
    "Info", "Debug"};
static const char *const PRIO_OUT[9] = {
    "Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational",
    "Informational", "Debug"};

/* ---- characters ------------------------------------------------------------------ */

#define AT(i) ((i) >= 0 && (i) < n ? s[(i)] : 0)
static inline int is_digit(int c) { return c >= '0' && c <= '9'; }
static inline int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static inline int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline int is_word(int c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static inline int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
/* Python's str.isspace() / regex \s for ASCII (only " " reaches here: see above). */
static inline int is_sp(int c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }

typedef struct { Py_ssize_t a, e; } Span;

static inline Span strip(const char *s, Py_ssize_t a, Py_ssize_t e) {
    while (a < e && is_sp(s[a])) a++;
    while (e > a && is_sp(s[e - 1])) e--;
    Span r = {a, e};
    return r;
}

static inline Py_ssize_t rstrip_end(const char *s, Py_ssize_t a, Py_ssize_t e) {
    while (e > a && is_sp(s[e - 1])) e--;
    return e;
}

static Py_ssize_t find(const char *s, Py_ssize_t a, Py_ssize_t e, const char *needle) {
    Py_ssize_t m = (Py_ssize_t)strlen(needle);
    if (m == 0) return a <= e ? a : -1;
    Py_ssize_t i = a;
    while (i + m <= e) {
        const char *q = memchr(s + i, needle[0], (size_t)(e - m + 1 - i));
        if (q == NULL) return -1;
        i = q - s;
        if (memcmp(s + i, needle, (size_t)m) == 0) return i;
        i++;
    }
    return -1;
}

static Py_ssize_t rfind(const char *s, Py_ssize_t a, Py_ssize_t e, const char *needle) {
    Py_ssize_t m = (Py_ssize_t)strlen(needle);
    for (Py_ssize_t i = e - m; i >= a; i--) {
        if (memcmp(s + i, needle, (size_t)m) == 0) return i;
    }
    return -1;
}

static inline int contains_char(const char *s, Py_ssize_t a, Py_ssize_t e, char c) {
    return a < e && memchr(s + a, c, (size_t)(e - a)) != NULL;
}

static int in_words(const WordSet *set, const char *p, Py_ssize_t len) {
    unsigned bit = bloom_bit(p, len);
    if (!(set->bloom[bit >> 6] & (1ULL << (bit & 63)))) return 0;
    for (Py_ssize_t i = 0; i < set->count; i++) {
        if (set->words[i].n == len && memcmp(set->words[i].s, p, (size_t)len) == 0) return 1;
    }
    return 0;
}

/* ---- pairs ----------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t ks, ke; /* key span; kconst: the key is "%container.info" */
    Py_ssize_t vs, ve;
    int kconst;
} Pair;

typedef struct {
    Pair p[MAX_PAIRS];
    int n;
    int overflow;
} Pairs;

static void push(Pairs *ps, int kconst, Py_ssize_t ks, Py_ssize_t ke, Py_ssize_t vs, Py_ssize_t ve) {
    if (ps->n >= MAX_PAIRS) {
        ps->overflow = 1;
        return;
    }
    Pair *p = &ps->p[ps->n++];
    p->kconst = kconst;
    p->ks = ks;
    p->ke = ke;
    p->vs = vs;
    p->ve = ve;
}

static void insert_front(Pairs *ps, int kconst, Py_ssize_t ks, Py_ssize_t ke, Py_ssize_t vs, Py_ssize_t ve) {
    if (ps->n >= MAX_PAIRS) {
        ps->overflow = 1;
        return;
    }
    memmove(&ps->p[1], &ps->p[0], sizeof(Pair) * (size_t)ps->n);
    ps->n++;
    ps->p[0].kconst = kconst;
    ps->p[0].ks = ks;
    ps->p[0].ke = ke;
    ps->p[0].vs = vs;
    ps->p[0].ve = ve;
}

/* _KEY_FULL.fullmatch(word) and _HAS_LOWER.search(word): %?[A-Za-z_][\w.]*(?:\[[^\]\s=]*\])? */
static int is_key(const char *s, Py_ssize_t a, Py_ssize_t e) {
    Py_ssize_t p = a;
    int lower = 0;
    for (Py_ssize_t i = a; i < e; i++) {
        if (is_lower(s[i])) {
            lower = 1;
            break;
        }
    }
    if (!lower) return 0;
    if (p < e && s[p] == '%') p++;
    if (p >= e || !(is_alpha(s[p]) || s[p] == '_')) return 0;
    p++;
    while (p < e && (is_word(s[p]) || s[p] == '.')) p++;
    if (p == e) return 1;
    if (s[p] != '[') return 0;
    Py_ssize_t t = p + 1;
    while (t < e && s[t] != ']' && !is_sp(s[t]) && s[t] != '=') t++;
    return t < e && s[t] == ']' && t + 1 == e;
}

static int field_like(const char *s, Py_ssize_t a, Py_ssize_t e) {
    if (in_words(&known_keys, s + a, e - a)) return 1;
    for (Py_ssize_t i = a; i < e; i++) {
        if (s[i] == '_' || s[i] == '.' || s[i] == '[') return 1;
    }
    return e > a && s[a] == '%';
}

static inline int is_free(const char *s, Py_ssize_t a, Py_ssize_t e) {
    return in_words(&free_keys, s + a, e - a);
}

/* _SPACED_KEY.search: \s[a-z_][\w.]*(?:\[[^\]\s=]*\])?= */
static int spaced_key(const char *s, Py_ssize_t a, Py_ssize_t e) {
    for (Py_ssize_t p = a; p < e; p++) {
        if (!is_sp(s[p])) continue;
        Py_ssize_t q = p + 1;
        if (!(q < e && (is_lower(s[q]) || s[q] == '_'))) continue;
        Py_ssize_t r = q + 1;
        while (r < e && (is_word(s[r]) || s[r] == '.')) r++;
        if (r < e && s[r] == '=') return 1;
        if (r < e && s[r] == '[') {
            Py_ssize_t t = r + 1;
            while (t < e && s[t] != ']' && !is_sp(s[t]) && s[t] != '=') t++;
            if (t < e && s[t] == ']' && t + 1 < e && s[t + 1] == '=') return 1;
        }
    }
    return 0;
}

/* the class [\w .\[\]-] of _COMMA_SPLIT / _COMMA_PIECE */
static inline int comma_cls(int c) {
    return is_word(c) || c == ' ' || c == '.' || c == '[' || c == ']' || c == '-';
}

/* [A-Za-z_][\w .\[\]-]{0,60}?= at q, bounded by e: the position of "=", or -1 */
static Py_ssize_t comma_key(const char *s, Py_ssize_t q, Py_ssize_t e) {
    if (!(q < e && (is_alpha(s[q]) || s[q] == '_'))) return -1;
    Py_ssize_t r = q + 1;
    int cnt = 0;
    while (r < e && cnt < 60 && comma_cls(s[r])) {
        r++;
        cnt++;
    }
    return (r < e && s[r] == '=') ? r : -1;
}

/* split_comma: 1 when text[a:e] is "k=v, k=v" (pairs pushed), else 0 (nothing pushed) */
static int split_comma(const char *s, Py_ssize_t a, Py_ssize_t e, Pairs *out) {
    if (find(s, a, e, ", ") < 0 && find(s, a, e, ",\t") < 0) return 0;
    Span t = strip(s, a, e);
    Py_ssize_t starts[MAX_PAIRS], ends[MAX_PAIRS];
    int count = 0;
    Py_ssize_t piece = t.a;
    for (Py_ssize_t c = t.a; c < t.e; c++) {
        if (s[c] != ',') continue;
        Py_ssize_t q = c + 1;
        while (q < t.e && is_sp(s[q])) q++;
        if (q == c + 1) continue; /* \s+ */
        if (comma_key(s, q, t.e) < 0) continue;
        if (count >= MAX_PAIRS - 1) {
            out->overflow = 1;
            return 0;
        }
        starts[count] = piece;
        ends[count] = c;
        count++;
        piece = q;
        c = q - 1;
    }
    starts[count] = piece;
    ends[count] = t.e;
    count++;
    if (count < 2) return 0;
    int base = out->n;
    for (int i = 0; i < count; i++) {
        Py_ssize_t eq = comma_key(s, starts[i], ends[i]);
        if (eq < 0) {
            out->n = base;
            return 0;
        }
        Span v = strip(s, eq + 1, ends[i]);
        if (spaced_key(s, v.a, v.e)) {
            out->n = base;
            return 0;
        }
        Span k = strip(s, starts[i], eq);
        push(out, 0, k.a, k.e, v.a, v.e);
    }
    return 1;
}

/* _append_value */
static void append_value(const char *s, Pairs *out, Py_ssize_t ks, Py_ssize_t ke, Span v) {
    if (contains_char(s, v.a, v.e, '=') && !is_free(s, ks, ke)) {
        /* _NESTED_KEY: ^([A-Za-z_][\w]*\.[\w.]*)=(.*)$ */
        Py_ssize_t p = v.a;
        if (p < v.e && (is_alpha(s[p]) || s[p] == '_')) {
            p++;
            while (p < v.e && is_word(s[p])) p++;
            if (p < v.e && s[p] == '.') {
                p++;
                while (p < v.e && (is_word(s[p]) || s[p] == '.')) p++;
                if (p < v.e && s[p] == '=') {
                    push(out, 0, ks, ke, v.a, v.a);
                    Span rest = strip(s, p + 1, v.e);
                    push(out, 0, v.a, p, rest.a, rest.e);
                    return;
                }
            }
        }
    }
    if (v.e > v.a && s[v.e - 1] == ')' && find(s, v.a, v.e, "(id=") >= 0) {
        Py_ssize_t mark = rfind(s, v.a, v.e, " (id=");
        if (mark > v.a) {
            /* _CONTAINER_ID_SUFFIX.fullmatch(value, mark + 1) */
            Py_ssize_t x = mark + 5, len = v.e - 1 - x;
            int ok = 0;
            if (len == 4 && memcmp(s + x, "host", 4) == 0) ok = 1;
            if (len == 12 || len == 64) {
                ok = 1;
                for (Py_ssize_t i = x; i < v.e - 1; i++) {
                    if (!is_hex(s[i])) {
                        ok = 0;
                        break;
                    }
                }
            }
            if (ok) {
                Py_ssize_t start = mark;
                while (start > v.a && !is_sp(s[start - 1])) start--;
                if (start != mark) {
                    Span head = strip(s, v.a, start);
                    push(out, 0, ks, ke, head.a, head.e);
                    push(out, 1, 0, 0, start, v.e);
                    return;
                }
            }
        }
    }
    push(out, 0, ks, ke, v.a, v.e);
}

/* split_pairs: pairs of text[a:e] pushed; returns the end of the lead text */
static Py_ssize_t split_pairs(const char *s, Py_ssize_t a, Py_ssize_t e, Pairs *out) {
    if (split_comma(s, a, e, out)) return a;
    if (out->overflow) return a;
    /* pieces of text.split("="): piece i is [pstart, peq) */
    Py_ssize_t pstart = a, key_s = -1, key_e = -1, vstart = -1;
    int i = 0;
    for (;;) {
        const char *q = memchr(s + pstart, '=', (size_t)(e - pstart));
        if (q == NULL) return e; /* no key: all lead */
        Py_ssize_t peq = q - s;
        Py_ssize_t sp = -1;
        for (Py_ssize_t k = peq - 1; k >= pstart; k--) {
            if (s[k] == ' ') {
                sp = k;
                break;
            }
        }
        Py_ssize_t ws = sp >= 0 ? sp + 1 : pstart;
        if ((sp >= 0 || i == 0) && is_key(s, ws, peq)) {
            key_s = ws;
            key_e = peq;
            vstart = peq + 1;
            break;
        }
        pstart = peq + 1;
        i++;
    }
    Py_ssize_t lead_end = key_s;
    int free_text = is_free(s, key_s, key_e);
    pstart = vstart;
    for (;;) {
        const char *q = memchr(s + pstart, '=', (size_t)(e - pstart));
        if (q == NULL) break; /* the last piece */
        Py_ssize_t peq = q - s;
        Py_ssize_t sp = -1;
        for (Py_ssize_t k = peq - 1; k >= pstart; k--) {
            if (s[k] == ' ') {
                sp = k;
                break;
            }
        }
        if (sp >= 0 && is_key(s, sp + 1, peq) && (!free_text || field_like(s, sp + 1, peq))) {
            append_value(s, out, key_s, key_e, strip(s, vstart, sp));
            key_s = sp + 1;
            key_e = peq;
            vstart = peq + 1;
            free_text = is_free(s, key_s, key_e);
        }
        pstart = peq + 1;
    }
    append_value(s, out, key_s, key_e, strip(s, vstart, e));
    return lead_end;
}

/* ---- split_body ------------------------------------------------------------------ */

/* textline._paren_open: the first "(" in [a, e) followed (not looking past e) by
 * \s*(?:[A-Za-z_%][\w.\[\] -]{0,60}=|\S+ \(id=), or -1. The run of non-space that
 * "\S+" takes ends where the next whitespace is: one scan finds that end for every
 * "(" whose run starts inside the last run scanned, so a long run of "(" (or of "(a")
 * costs linear time, not a scan of the rest of the run for each "(". */
static Py_ssize_t paren_open(const char *s, Py_ssize_t a, Py_ssize_t e) {
    Py_ssize_t run_a = 0, run_e = -1; /* [run_a, run_e): non-space, ending at space or e */
    for (Py_ssize_t p = a; p < e; p++) {
        if (s[p] != '(') continue;
        Py_ssize_t q = p + 1;
        while (q < e && is_sp(s[q])) q++;
        if (q < e && (is_alpha(s[q]) || s[q] == '_' || s[q] == '%')) {
            Py_ssize_t r = q + 1;
            int cnt = 0;
            while (r < e && cnt < 60 && (is_word(s[r]) || s[r] == '.' || s[r] == '[' || s[r] == ']' ||
                                         s[r] == ' ' || s[r] == '-')) {
                r++;
                cnt++;
            }
            if (r < e && s[r] == '=') return p;
        }
        if (q >= e) continue; /* "\S+" needs a character */
        if (!(run_a <= q && q < run_e)) {
            Py_ssize_t r = q;
            while (r < e && !is_sp(s[r])) r++;
            run_a = q;
            run_e = r;
        }
        if (run_e + 5 <= e && memcmp(s + run_e, " (id=", 5) == 0) return p;
    }
    return -1;
}

/* _PIPE_FIELDS.match: ^\s*[A-Za-z_%][\w.\[\]]*= */
static int pipe_fields(const char *s, Py_ssize_t q, Py_ssize_t e) {
    while (q < e && is_sp(s[q])) q++;
    if (!(q < e && (is_alpha(s[q]) || s[q] == '_' || s[q] == '%'))) return 0;
    q++;
    while (q < e && (is_word(s[q]) || s[q] == '.' || s[q] == '[' || s[q] == ']')) q++;
    return q < e && s[q] == '=';
}

/* _APPENDED.match at q: (?:\s*$|\s+[A-Za-z_%][\w.\[\]]*=|,\s*[A-Za-z_]) */
static int appended_at(const char *s, Py_ssize_t q, Py_ssize_t e) {
    Py_ssize_t r = q;
    while (r < e && is_sp(s[r])) r++;
    if (r == e) return 1;
    if (r > q && pipe_fields(s, r, e)) return 1;
    if (q < e && s[q] == ',') {
        r = q + 1;
        while (r < e && is_sp(s[r])) r++;
        if (r < e && (is_alpha(s[r]) || s[r] == '_')) return 1;
    }
    return 0;
}

static Py_ssize_t closing_paren(const char *s, Py_ssize_t start, Py_ssize_t e) {
    for (Py_ssize_t pos = e - 1; pos >= start; pos--) {
        if (s[pos] == ')' && appended_at(s, pos + 1, e)) return pos;
    }
    return -1;
}

/* _cut_pager: 1 (and *end cut) when a pager's ">" ends text[a:e] */
static int cut_pager(const char *s, Py_ssize_t a, Py_ssize_t *end) {
    Py_ssize_t e2 = rstrip_end(s, a, *end);
    if (!(e2 > a && s[e2 - 1] == '>')) return 0;
    /* _TRUNC_OK: (?:<[A-Za-z]*>|->)$ */
    if (e2 - 2 >= a && s[e2 - 2] == '-') return 0;
    Py_ssize_t k = e2 - 2;
    while (k >= a && is_alpha(s[k])) k--;
    if (k >= a && s[k] == '<') return 0;
    *end = e2 - 1;
    return 1;
}

typedef struct {
    Span message;
    PyObject *style; /* borrowed constant */
    Pairs fields;    /* fields, then the appended ones */
    int n_fields;    /* how many of them are fields (the rest are appended) */
    int truncated;
} Body;

static void split_body(const char *s, Py_ssize_t b0, Py_ssize_t b1, Body *out) {
    out->fields.n = 0;
    out->fields.overflow = 0;
    out->truncated = 0;
    Py_ssize_t pipe = find(s, b0, b1, " | ");
    Py_ssize_t paren = paren_open(s, b0, pipe >= 0 ? pipe : b1);
    if (pipe >= 0 && paren < 0 && pipe_fields(s, pipe + 3, b1)) {
        out->style = str_pipe;
        out->message.a = b0;
        out->message.e = rstrip_end(s, b0, pipe);
        Py_ssize_t end = b1;
        out->truncated = cut_pager(s, pipe + 3, &end);
        split_pairs(s, pipe + 3, end, &out->fields);
        if (out->truncated && out->fields.n > 0) out->fields.n--;
        out->n_fields = out->fields.n;
        return;
    }
    if (paren >= 0) {
        out->style = str_paren;
        out->message.a = b0;
        out->message.e = rstrip_end(s, b0, paren);
        Py_ssize_t inner_start = paren + 1;
        Py_ssize_t close = closing_paren(s, inner_start, b1);
        Py_ssize_t inner_end, tail_s, tail_e;
        if (close < 0) {
            inner_end = b1;
            out->truncated = cut_pager(s, inner_start, &inner_end);
            tail_s = tail_e = b1;
        } else {
            inner_end = close;
            tail_s = close + 1;
            tail_e = b1;
        }
        Py_ssize_t lead_end = split_pairs(s, inner_start, inner_end, &out->fields);
        Span lead = strip(s, inner_start, lead_end);
        if (lead.e > lead.a) {
            /* _INFO_LEAD: ^\s*(\S+ \(id=(?:[0-9a-f]{12}|[0-9a-f]{64}|host)\))\s*$ */
            Py_ssize_t r = lead.a;
            while (r < lead.e && !is_sp(s[r])) r++;
            if (r > lead.a && r + 5 <= lead.e && memcmp(s + r, " (id=", 5) == 0 &&
                s[lead.e - 1] == ')') {
                Py_ssize_t x = r + 5, len = lead.e - 1 - x;
                int ok = len == 4 && memcmp(s + x, "host", 4) == 0;
                if (len == 12 || len == 64) {
                    ok = 1;
                    for (Py_ssize_t i = x; i < lead.e - 1; i++) {
                        if (!is_hex(s[i])) {
                            ok = 0;
                            break;
                        }
                    }
                }
                if (ok) insert_front(&out->fields, 1, 0, 0, lead.a, lead.e);
            }
        }
        if (out->truncated && out->fields.n > 0) out->fields.n--;
        out->n_fields = out->fields.n;
        Span tail = strip(s, tail_s, tail_e);
        if (tail.e > tail.a) {
            Py_ssize_t ta = tail.a;
            while (ta < tail.e && s[ta] == ',') ta++;
            Span t2 = strip(s, ta, tail.e);
            if (!split_comma(s, t2.a, t2.e, &out->fields) && !out->fields.overflow) {
                split_pairs(s, t2.a, t2.e, &out->fields);
            }
        }
        return;
    }
    out->style = str_bare;
    Py_ssize_t end = b1;
    out->truncated = cut_pager(s, b0, &end);
    Py_ssize_t lead_end = split_pairs(s, b0, end, &out->fields);
    if (out->fields.n > 0) {
        if (out->truncated) out->fields.n--;
        out->message.a = b0;
        out->message.e = rstrip_end(s, b0, lead_end);
    } else {
        out->message = strip(s, b0, end);
    }
    out->n_fields = out->fields.n;
}

/* ---- the anchor ------------------------------------------------------------------ */

typedef struct {
    Py_ssize_t start, time_end, end;
    int prio;
} Anchor;

static int digits(const char *s, Py_ssize_t n, Py_ssize_t i, int count) {
    for (int k = 0; k < count; k++) {
        if (!is_digit(AT(i + k))) return 0;
    }
    return 1;
}

static int anchor_at(const char *s, Py_ssize_t n, Py_ssize_t i, Anchor *out) {
    Py_ssize_t k;
    if (digits(s, n, i, 2) && AT(i + 2) == ':') {
        /* \d{2}:\d{2}:\d{2}\.\d{1,9} */
        if (!(digits(s, n, i + 3, 2) && AT(i + 5) == ':' && digits(s, n, i + 6, 2) &&
              AT(i + 8) == '.'))
            return 0;
        k = i + 9;
    } else if (digits(s, n, i, 4) && AT(i + 4) == '-') {
        /* \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,9}(?:[+-]\d{4}|Z)? */
        if (!(digits(s, n, i + 5, 2) && AT(i + 7) == '-' && digits(s, n, i + 8, 2) &&
              AT(i + 10) == 'T' && digits(s, n, i + 11, 2) && AT(i + 13) == ':' &&
              digits(s, n, i + 14, 2) && AT(i + 16) == ':' && digits(s, n, i + 17, 2) &&
              AT(i + 19) == '.'))
            return 0;
        k = i + 20;
    } else {
        return 0;
    }
    Py_ssize_t f = k;
    while (is_digit(AT(k))) k++;
    if (k == f || k - f > 9) return 0;
    if (f == i + 20) { /* ISO: the optional zone */
        if ((AT(k) == '+' || AT(k) == '-') && digits(s, n, k + 1, 4))
            k += 5;
        else if (AT(k) == 'Z')
            k += 1;
    }
    Py_ssize_t time_end = k;
    /* (?::[ \t]+| - ) */
    if (AT(k) == ':' && (AT(k + 1) == ' ' || AT(k + 1) == '\t')) {
        k += 1;
        while (AT(k) == ' ' || AT(k) == '\t') k++;
    } else if (AT(k) == ' ' && AT(k + 1) == '-' && AT(k + 2) == ' ') {
        k += 3;
    } else {
        return 0;
    }
    for (int w = 0; w < 9; w++) {
        Py_ssize_t len = (Py_ssize_t)strlen(PRIO_WORDS[w]);
        if (k + len > n || memcmp(s + k, PRIO_WORDS[w], (size_t)len) != 0) continue;
        Py_ssize_t q = k + len;
        Py_ssize_t end;
        if (AT(q) == ' ' && AT(q + 1) == '-' && AT(q + 2) == ' ') {
            end = q + 3;
        } else if (AT(q) == ' ' || AT(q) == '\t') {
            end = q;
            while (AT(end) == ' ' || AT(end) == '\t') end++;
        } else if (q == n) {
            end = q;
        } else {
            continue;
        }
        out->start = i;
        out->time_end = time_end;
        out->end = end;
        out->prio = w;
        return 1;
    }
    return 0;
}

static int anchor_search(const char *s, Py_ssize_t n, Anchor *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_digit(s[i]) && anchor_at(s, n, i, out)) return 1;
    }
    return 0;
}

/* ---- normalize ------------------------------------------------------------------- */

static int hex_run(PyObject *v, Py_ssize_t len) {
    if (PyUnicode_GET_LENGTH(v) != len) return 0;
    const char *p = (const char *)PyUnicode_1BYTE_DATA(v);
    for (Py_ssize_t i = 0; i < len; i++) {
        if (!is_hex(p[i])) return 0;
    }
    return 1;
}

static int is_hex64(PyObject *v) { return v != NULL && hex_run(v, 64); }

static int is_hex12_or_host(PyObject *v) {
    return hex_run(v, 12) || PyUnicode_CompareWithASCIIString(v, "host") == 0;
}

/* to_int: a new reference to an int, or to None */
static PyObject *to_int_span(const char *p, Py_ssize_t len) {
    Py_ssize_t i = 0;
    if (len > 0 && p[0] == '-') i = 1;
    Py_ssize_t nd = len - i;
    if (nd < 1 || nd > 19) Py_RETURN_NONE;
    for (Py_ssize_t k = i; k < len; k++) {
        if (!is_digit(p[k])) Py_RETURN_NONE;
    }
    char buf[24];
    memcpy(buf, p, (size_t)len);
    buf[len] = 0;
    return PyLong_FromString(buf, NULL, 10);
}

static PyObject *to_int(PyObject *v) {
    if (v == NULL || v == Py_None) Py_RETURN_NONE;
    return to_int_span((const char *)PyUnicode_1BYTE_DATA(v), PyUnicode_GET_LENGTH(v));
}

static int truthy_int(PyObject *v) {
    /* `to_int(...) or ...`: None and 0 are false */
    if (v == Py_None) return 0;
    int r = PyObject_IsTrue(v);
    return r > 0;
}

/* _INFO: ^(\S+) \(id=([0-9a-f]{12}|[0-9a-f]{64}|host)\)$ -> new refs in *name, *cid */
static int info_match(PyObject *v, PyObject **name, PyObject **cid) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(v);
    Py_ssize_t r = 0;
    while (r < n && !is_sp(s[r])) r++;
    if (r == 0 || r + 5 > n || memcmp(s + r, " (id=", 5) != 0 || s[n - 1] != ')') return 0;
    Py_ssize_t x = r + 5, len = n - 1 - x;
    int ok = len == 4 && memcmp(s + x, "host", 4) == 0;
    if (len == 12 || len == 64) {
        ok = 1;
        for (Py_ssize_t i = x; i < n - 1; i++) {
            if (!is_hex(s[i])) {
                ok = 0;
                break;
            }
        }
    }
    if (!ok) return 0;
    *name = PyUnicode_Substring(v, 0, r);
    if (*name == NULL) return -1;
    *cid = PyUnicode_Substring(v, x, n - 1);
    if (*cid == NULL) {
        Py_CLEAR(*name);
        return -1;
    }
    return 1;
}

/* The present values of the special names of this line, by KEY index (borrowed). */
#define dget(d, key) ((d)[(key)])

/* ---- the key cache ---------------------------------------------------------------
 * Field names repeat from line to line: each distinct name gets one str object, its
 * canonical slot and rank (normalize._SLOTS), its KEY index, and the generation (call)
 * in which it last had a present value, so no per-line dict is needed. */

typedef struct {
    uint64_t h;
    uint64_t gen;
    PyObject *str;
    int slot, rank, kid;
} KEntry;

#define KCAP 8192
#define KMAX 4096
static KEntry ktab[KCAP];
static int kfill;
static uint64_t cur_gen;

static inline uint64_t fnv1a(const char *p, Py_ssize_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void kclear(void) {
    for (int i = 0; i < KCAP; i++) {
        Py_CLEAR(ktab[i].str);
        ktab[i].h = 0;
        ktab[i].gen = 0;
    }
    kfill = 0;
}

/* The entry of the name p[:len] (created when new), or NULL with an error set. */
static KEntry *key_entry(const char *p, Py_ssize_t len) {
    uint64_t h = fnv1a(p, len);
    size_t i = (size_t)h & (KCAP - 1);
    for (;;) {
        KEntry *e = &ktab[i];
        if (e->str == NULL) break;
        if (e->h == h && PyUnicode_GET_LENGTH(e->str) == len &&
            memcmp(PyUnicode_1BYTE_DATA(e->str), p, (size_t)len) == 0)
            return e;
        i = (i + 1) & (KCAP - 1);
    }
    /* kfill stays below KMAX + MAX_PAIRS + 1 < KCAP: a free slot was found above */
    PyObject *str = PyUnicode_New(len, 127);
    if (str == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(str), p, (size_t)len);
    /* Not interned: the key table already shares one string per name, and interned
       strings are never freed on some CPython 3.12 releases (an alert could invent names
       without bound). */
    int slot = -1, rank = 0, kid = -1;
    PyObject *info = PyDict_GetItemWithError(slots_map, str);
    if (info == NULL && PyErr_Occurred()) {
        Py_DECREF(str);
        return NULL;
    }
    if (info != NULL) {
        long idx = PyLong_AsLong(PyTuple_GET_ITEM(info, 0));
        long rk = PyLong_AsLong(PyTuple_GET_ITEM(info, 1));
        if (PyErr_Occurred()) {
            Py_DECREF(str);
            return NULL;
        }
        if (idx >= 0 && idx < NSLOTS && rk >= 0 && rk < (1 << 20)) {
            slot = (int)idx;
            rank = (int)rk;
        }
    }
    for (int k = 0; k < K_COUNT; k++) {
        if ((Py_ssize_t)strlen(KEY_TEXT[k]) == len && memcmp(KEY_TEXT[k], p, (size_t)len) == 0) {
            kid = k;
            break;
        }
    }
    KEntry *e = &ktab[i];
    e->h = h;
    e->gen = 0;
    e->str = str;
    e->slot = slot;
    e->rank = rank;
    e->kid = kid;
    kfill++;
    return e;
}

#define OR(a, b) ((a) != NULL ? (a) : (b))

/* _split_endpoint: new refs in *host (str or None) and *port (int or None) */
static int split_endpoint(PyObject *text, Py_ssize_t a, Py_ssize_t e, PyObject **host, PyObject **port) {
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    Span t = strip(s, a, e);
    Py_ssize_t colon = -1;
    for (Py_ssize_t i = t.e - 1; i >= t.a; i--) {
        if (s[i] == ':') {
            colon = i;
            break;
        }
    }
    if (colon < 0) {
        if (t.e > t.a) {
            *host = PyUnicode_Substring(text, t.a, t.e);
            if (*host == NULL) return -1;
        } else {
            *host = Py_NewRef(Py_None);
        }
        *port = Py_NewRef(Py_None);
        return 0;
    }
    Py_ssize_t ha = t.a, he = colon;
    while (ha < he && (s[ha] == '[' || s[ha] == ']')) ha++;
    while (he > ha && (s[he - 1] == '[' || s[he - 1] == ']')) he--;
    if (he > ha) {
        *host = PyUnicode_Substring(text, ha, he);
        if (*host == NULL) return -1;
    } else {
        *host = Py_NewRef(Py_None);
    }
    *port = to_int_span(s + colon + 1, t.e - colon - 1);
    if (*port == NULL) {
        Py_CLEAR(*host);
        return -1;
    }
    return 0;
}

/* object.__new__(cls): attributes are then set with object.__setattr__ (which is what
 * a frozen dataclass's __init__ does), into the instance's own attribute storage. */
static PyObject *new_obj(PyObject *cls) {
    PyTypeObject *tp = (PyTypeObject *)cls;
    return tp->tp_new(tp, empty_tuple, NULL);
}


/* Set d[key] = value (stealing value); -1 on error */
static int put(PyObject *d, int key, PyObject *value) {
    if (value == NULL) return -1;
    int r = PyObject_GenericSetAttr(d, KEY[key], value);
    Py_DECREF(value);
    return r;
}

static int has_arrow(PyObject *v) {
    const char *s = (const char *)PyUnicode_1BYTE_DATA(v);
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    return find(s, 0, n, "->") >= 0;
}

/* The Connection of _connection(), or None; a new reference */
static PyObject *make_connection(PyObject **d) {
    static const int CONNECTION[] = {K_FD_DOT_NAME, K_CONNECTION, K_FD_NAME};
    PyObject *raw = NULL;
    for (int i = 0; i < 3; i++) {
        PyObject *v = dget(d, CONNECTION[i]);
        if (v == NULL && PyErr_Occurred()) return NULL;
        if (v != NULL && has_arrow(v)) {
            raw = v;
            break;
        }
    }
    PyObject *rip = dget(d, K_FD_RIP);
    if (rip == NULL && PyErr_Occurred()) return NULL;
    PyObject *rport_s = dget(d, K_FD_RPORT);
    if (rport_s == NULL && PyErr_Occurred()) return NULL;
    if (raw == NULL && rip == NULL && rport_s == NULL) Py_RETURN_NONE;
    PyObject *rname = dget(d, K_FD_RIP_NAME);
    if (rname == NULL) {
        if (PyErr_Occurred()) return NULL;
        rname = dget(d, K_FD_SIP_NAME);
        if (rname == NULL && PyErr_Occurred()) return NULL;
    }
    PyObject *port = to_int(rport_s);
    if (port == NULL) return NULL;
    if (raw == NULL && rip == NULL && port == Py_None && rname == NULL) {
        Py_DECREF(port);
        Py_RETURN_NONE;
    }
    PyObject *cip = NULL, *cport = NULL, *sip = NULL, *sport = NULL, *dict = NULL, *res = NULL;
    if (raw != NULL) {
        const char *s = (const char *)PyUnicode_1BYTE_DATA(raw);
        Py_ssize_t n = PyUnicode_GET_LENGTH(raw);
        Py_ssize_t arrow = find(s, 0, n, "->");
        if (split_endpoint(raw, 0, arrow, &cip, &cport) < 0) goto done;
        if (split_endpoint(raw, arrow + 2, n, &sip, &sport) < 0) goto done;
    } else {
        cip = Py_NewRef(Py_None);
        cport = Py_NewRef(Py_None);
        sip = Py_NewRef(Py_None);
        sport = Py_NewRef(Py_None);
    }
    dict = new_obj(cls_connection);
    if (dict == NULL) goto done;
    if (PyObject_GenericSetAttr(dict, KEY[K_RAW], OR(raw, Py_None)) < 0 ||
        PyObject_GenericSetAttr(dict, KEY[K_CLIENT_IP], cip) < 0 ||
        PyObject_GenericSetAttr(dict, KEY[K_CLIENT_PORT], cport) < 0 ||
        PyObject_GenericSetAttr(dict, KEY[K_SERVER_IP], sip) < 0 ||
        PyObject_GenericSetAttr(dict, KEY[K_SERVER_PORT], sport) < 0 ||
        PyObject_GenericSetAttr(dict, KEY[K_REMOTE_IP], OR(rip, Py_None)) < 0 ||
        PyObject_GenericSetAttr(dict, KEY[K_REMOTE_PORT], port) < 0 ||
        PyObject_GenericSetAttr(dict, KEY[K_REMOTE_NAME], OR(rname, Py_None)) < 0)
        goto done;
    res = Py_NewRef(dict);
done:
    Py_XDECREF(port);
    Py_XDECREF(cip);
    Py_XDECREF(cport);
    Py_XDECREF(sip);
    Py_XDECREF(sport);
    Py_XDECREF(dict);
    return res;
}

/* ---- pairs seen before ------------------------------------------------------------
 * The same (name, value) pair comes back line after line (user=root, image=...): the
 * tuple is immutable, so the last one built for each hash is handed out again. */

#define PCAP 4096
typedef struct {
    uint64_t h;
    PyObject *pair;
} PEntry;
static PEntry ptab[PCAP];

static PyObject *pair_for(KEntry *ke, const char *v, Py_ssize_t len) {
    uint64_t h = fnv1a(v, len) ^ (ke->h * 31);
    PEntry *pe = &ptab[h & (PCAP - 1)];
    if (pe->pair != NULL && pe->h == h && PyTuple_GET_ITEM(pe->pair, 0) == ke->str) {
        PyObject *old = PyTuple_GET_ITEM(pe->pair, 1);
        if (PyUnicode_GET_LENGTH(old) == len && memcmp(PyUnicode_1BYTE_DATA(old), v, (size_t)len) == 0)
            return Py_NewRef(pe->pair);
    }
    PyObject *value = PyUnicode_New(len, 127);
    if (value == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(value), v, (size_t)len);
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, Py_NewRef(ke->str));
    PyTuple_SET_ITEM(pair, 1, value);
    Py_XSETREF(pe->pair, Py_NewRef(pair));
    pe->h = h;
    return pair;
}

/* ---- wrappers --------------------------------------------------------------------
 * textline._wrapper_of in C: what is in front of the anchor, matched against the
 * patterns of textline._WRAPPERS in order, up to three times (a wrapper inside a
 * wrapper). Each pattern's regular expression is deterministic under the printable
 * ASCII restriction (no backtracking changes what it matches), so each is a scan. */

enum { W_POD, W_CONTAINER, W_PRI, W_TS, W_HOST, W_TAG, W_SERVICE, W_NAMES };
static const char *const W_NAME_TEXT[W_NAMES] = {"pod", "container", "pri", "ts", "host", "tag", "service"};
static PyObject *w_names[W_NAMES], *str_kind;

typedef struct {
    int name;
    Span v;
} WGroup;

/* [\w.-] */
static inline int tag_char(int c) { return is_word(c) || c == '.' || c == '-'; }

static Py_ssize_t run_nonspace(const char *s, Py_ssize_t p, Py_ssize_t e) {
    while (p < e && !is_sp(s[p])) p++;
    return p;
}

static int digits_at(const char *s, Py_ssize_t p, Py_ssize_t e, int count) {
    if (p + count > e) return 0;
    for (int k = 0; k < count; k++) {
        if (!is_digit(s[p + k])) return 0;
    }
    return 1;
}

/* " (\S+) ([\w.-]+)" after a syslog time at p: host and tag, and the end of the tag */
static Py_ssize_t host_tag(const char *s, Py_ssize_t p, Py_ssize_t e, WGroup *g) {
    if (!(p < e && s[p] == ' ')) return -1;
    Py_ssize_t h = p + 1, he = run_nonspace(s, h, e);
    if (he == h || !(he < e && s[he] == ' ')) return -1;
    Py_ssize_t t = he + 1, te = t;
    while (te < e && tag_char(s[te])) te++;
    if (te == t) return -1;
    g[0].name = W_HOST;
    g[0].v.a = h;
    g[0].v.e = he;
    g[1].name = W_TAG;
    g[1].v.a = t;
    g[1].v.e = te;
    return te;
}

/* "(?:\[\d+\])?: " at p: its end, or -1 */
static Py_ssize_t pid_colon(const char *s, Py_ssize_t p, Py_ssize_t e) {
    if (p < e && s[p] == '[') {
        Py_ssize_t q = p + 1;
        while (q < e && is_digit(s[q])) q++;
        if (q > p + 1 && q < e && s[q] == ']') p = q + 1;
    }
    return (p + 1 < e && s[p] == ':' && s[p + 1] == ' ') ? p + 2 : -1;
}

/* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d at p */
static int iso_seconds(const char *s, Py_ssize_t p, Py_ssize_t e) {
    return digits_at(s, p, e, 4) && p + 19 <= e && s[p + 4] == '-' && digits_at(s, p + 5, e, 2) &&
           s[p + 7] == '-' && digits_at(s, p + 8, e, 2) && s[p + 10] == 'T' &&
           digits_at(s, p + 11, e, 2) && s[p + 13] == ':' && digits_at(s, p + 14, e, 2) &&
           s[p + 16] == ':' && digits_at(s, p + 17, e, 2);
}

/* One pattern of _WRAPPERS at a: the kind's index, its groups and the end, or -1. */
static int wrapper_match(const char *s, Py_ssize_t a, Py_ssize_t e, WGroup *g, int *ng, Py_ssize_t *end) {
    Py_ssize_t p, q, r;
    /* kubectl-prefix: ^\[pod/(?P<pod>[^/\]\s]+)/(?P<container>[^\]\s]+)\]\s */
    if (e - a >= 5 && memcmp(s + a, "[pod/", 5) == 0) {
        p = a + 5;
        q = p;
        while (q < e && s[q] != '/' && s[q] != ']' && !is_sp(s[q])) q++;
        if (q > p && q < e && s[q] == '/') {
            r = q + 1;
            Py_ssize_t t = r;
            while (t < e && s[t] != ']' && !is_sp(s[t])) t++;
            if (t > r && t + 1 < e && s[t] == ']' && is_sp(s[t + 1])) {
                g[0].name = W_POD;
                g[0].v.a = p;
                g[0].v.e = q;
                g[1].name = W_CONTAINER;
                g[1].v.a = r;
                g[1].v.e = t;
                *ng = 2;
                *end = t + 2;
                return 0;
            }
        }
    }
    /* syslog: ^<(?P<pri>\d{1,3})>(?P<ts>\S+) (?P<host>\S+) (?P<tag>[\w.-]+) */
    if (a < e && s[a] == '<') {
        p = a + 1;
        q = p;
        while (q < e && is_digit(s[q])) q++;
        if (q > p && q - p <= 3 && q < e && s[q] == '>') {
            Py_ssize_t ts = q + 1, tse = run_nonspace(s, ts, e);
            if (tse > ts) {
                Py_ssize_t te = host_tag(s, tse, e, g + 2);
                if (te >= 0) {
                    g[0].name = W_PRI;
                    g[0].v.a = p;
                    g[0].v.e = q;
                    g[1].name = W_TS;
                    g[1].v.a = ts;
                    g[1].v.e = tse;
                    *ng = 4;
                    *end = te;
                    return 1;
                }
            }
        }
    }
    /* syslog: ^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<tag>[\w.-]+)(?:\[\d+\])?: */
    if (a + 15 <= e && s[a] >= 'A' && s[a] <= 'Z' && is_lower(s[a + 1]) && is_lower(s[a + 2]) &&
        s[a + 3] == ' ' && (s[a + 4] == ' ' || is_digit(s[a + 4])) && is_digit(s[a + 5]) &&
        s[a + 6] == ' ' && digits_at(s, a + 7, e, 2) && s[a + 9] == ':' &&
        digits_at(s, a + 10, e, 2) && s[a + 12] == ':' && digits_at(s, a + 13, e, 2)) {
        Py_ssize_t te = host_tag(s, a + 15, e, g + 1);
        Py_ssize_t pe = te >= 0 ? pid_colon(s, te, e) : -1;
        if (pe >= 0) {
            g[0].name = W_TS;
            g[0].v.a = a;
            g[0].v.e = a + 15;
            *ng = 3;
            *end = pe;
            return 1;
        }
    }
    /* syslog: ^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)) (?P<host>\S+) (?P<tag>[\w.-]+)(?:\[\d+\])?: */
    if (iso_seconds(s, a, e)) {
        p = a + 19;
        if (p < e && s[p] == '.') {
            q = p + 1;
            while (q < e && is_digit(s[q])) q++;
            if (q > p + 1) p = q;
        }
        Py_ssize_t ze = -1;
        if (p + 6 <= e && (s[p] == '+' || s[p] == '-') && digits_at(s, p + 1, e, 2) && s[p + 3] == ':' &&
            digits_at(s, p + 4, e, 2))
            ze = p + 6;
        else if (p < e && s[p] == 'Z')
            ze = p + 1;
        if (ze >= 0) {
            Py_ssize_t te = host_tag(s, ze, e, g + 1);
            Py_ssize_t pe = te >= 0 ? pid_colon(s, te, e) : -1;
            if (pe >= 0) {
                g[0].name = W_TS;
                g[0].v.a = a;
                g[0].v.e = ze;
                *ng = 3;
                *end = pe;
                return 1;
            }
        }
        /* kubectl-timestamps: ^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) */
        p = a + 19;
        if (p < e && s[p] == '.') {
            q = p + 1;
            while (q < e && is_digit(s[q])) q++;
            if (q > p + 1 && q + 1 < e && s[q] == 'Z' && s[q + 1] == ' ') {
                g[0].name = W_TS;
                g[0].v.a = a;
                g[0].v.e = q + 1;
                *ng = 1;
                *end = q + 2;
                return 2;
            }
        }
    }
    /* docker-compose: ^(?P<service>[\w.-]+)\s+\| */
    p = a;
    while (p < e && tag_char(s[p])) p++;
    if (p > a) {
        q = p;
        while (q < e && is_sp(s[q])) q++;
        if (q > p && q + 1 < e && s[q] == '|' && s[q + 1] == ' ') {
            g[0].name = W_SERVICE;
            g[0].v.a = a;
            g[0].v.e = p;
            *ng = 1;
            *end = q + 2;
            return 3;
        }
    }
    /* stern: ^(?P<pod>[a-z0-9][a-z0-9.-]*) (?P<container>[a-z0-9][a-z0-9-]*) */
    if (a < e && (is_lower(s[a]) || is_digit(s[a]))) {
        p = a + 1;
        while (p < e && (is_lower(s[p]) || is_digit(s[p]) || s[p] == '.' || s[p] == '-')) p++;
        if (p < e && s[p] == ' ' && p + 1 < e && (is_lower(s[p + 1]) || is_digit(s[p + 1]))) {
            q = p + 2;
            while (q < e && (is_lower(s[q]) || is_digit(s[q]) || s[q] == '-')) q++;
            if (q < e && s[q] == ' ') {
                g[0].name = W_POD;
                g[0].v.a = a;
                g[0].v.e = p;
                g[1].name = W_CONTAINER;
                g[1].v.a = p + 1;
                g[1].v.e = q;
                *ng = 2;
                *end = q + 1;
                return 4;
            }
        }
    }
    return -1;
}

static const char *const W_KINDS[5] = {"kubectl-prefix", "syslog", "kubectl-timestamps", "docker-compose", "stern"};

/* The wrapper tuple of text[a:e] (a new reference); text's data is s. */
static PyObject *wrapper_parse(PyObject *text, const char *s, Py_ssize_t a, Py_ssize_t e) {
    Span all = strip(s, a, e);
    if (all.e == all.a) return Py_NewRef(empty_tuple);
    int kinds[3], nk = 0, ni = 0;
    WGroup items[12];
    Py_ssize_t rest = a;
    for (int round = 0; round < 3; round++) {
        WGroup g[4];
        int ng = 0;
        Py_ssize_t end = rest;
        int kind = wrapper_match(s, rest, e, g, &ng, &end);
        if (kind < 0) break;
        kinds[nk++] = kind;
        for (int i = 0; i < ng; i++) {
            int seen = 0;
            for (int j = 0; j < ni; j++) {
                if (items[j].name == g[i].name) seen = 1;
            }
            if (!seen) items[ni++] = g[i];
        }
        rest = end;
        Span left = strip(s, rest, e);
        if (left.e == left.a) break;
    }
    if (nk == 0) return Py_NewRef(empty_tuple);
    char buf[64];
    size_t used = 0;
    for (int i = 0; i < nk; i++) {
        size_t len = strlen(W_KINDS[kinds[i]]);
        if (i) buf[used++] = '+';
        memcpy(buf + used, W_KINDS[kinds[i]], len);
        used += len;
    }
    PyObject *out = PyTuple_New(1 + ni);
    if (out == NULL) return NULL;
    PyObject *kind = PyUnicode_FromStringAndSize(buf, (Py_ssize_t)used);
    PyObject *pair = kind ? PyTuple_Pack(2, str_kind, kind) : NULL;
    Py_XDECREF(kind);
    if (pair == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, pair);
    for (int i = 0; i < ni; i++) {
        PyObject *v = PyUnicode_Substring(text, items[i].v.a, items[i].v.e);
        pair = v ? PyTuple_Pack(2, w_names[items[i].name], v) : NULL;
        Py_XDECREF(v);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, 1 + i, pair);
    }
    return out;
}

/* Repeated prefixes (docker-compose, stern, kubectl --prefix) keep their last tuple
 * here, by the prefix's bytes (direct-mapped). */
#define WCAP 256
typedef struct {
    uint64_t h;
    PyObject *prefix, *wrapper;
} WEntry;
static WEntry wtab[WCAP];

static PyObject *wrapper_for(PyObject *line, const char *s, Py_ssize_t len) {
    uint64_t h = fnv1a(s, len);
    WEntry *w = &wtab[h & (WCAP - 1)];
    if (w->prefix != NULL && w->h == h && PyUnicode_GET_LENGTH(w->prefix) == len &&
        memcmp(PyUnicode_1BYTE_DATA(w->prefix), s, (size_t)len) == 0)
        return Py_NewRef(w->wrapper);
    PyObject *prefix = PyUnicode_Substring(line, 0, len);
    if (prefix == NULL) return NULL;
    PyObject *wrapper = wrapper_parse(line, s, 0, len);
    if (wrapper == NULL) {
        Py_DECREF(prefix);
        return NULL;
    }
    Py_XSETREF(w->prefix, prefix);
    Py_XSETREF(w->wrapper, Py_NewRef(wrapper));
    w->h = h;
    return wrapper;
}

static PyObject *py_wrapper(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!PyUnicode_CheckExact(arg) || !PyUnicode_IS_ASCII(arg)) Py_RETURN_NONE;
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(arg);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) Py_RETURN_NONE;
    }
    return wrapper_parse(arg, s, 0, n);
}

/* ---- text_alert ------------------------------------------------------------------ */

static int absent(const char *s, Py_ssize_t a, Py_ssize_t e) {
    if (e - a == 4 && memcmp(s + a, "<NA>", 4) == 0) return 1;
    for (Py_ssize_t i = a; i < e; i++) {
        if (!is_sp(s[i])) return 0;
    }
    return 1; /* "" or only whitespace */
}

static int key_is(PyObject *k, const char *name) { return PyUnicode_CompareWithASCIIString(k, name) == 0; }

static PyObject *build(PyObject *line, const char *s, Py_ssize_t n, Anchor *m, Body *b,
                       PyObject *lineno) {
    PyObject *d[K_COUNT] = {0}; /* borrowed from fields */
    PyObject *fields = NULL, *message = NULL, *alert_d = NULL, *result = NULL;
    PyObject *vals_own[NSLOTS] = {0}; /* borrowed from d */
    int ranks[NSLOTS];
    PyObject *pid = NULL, *vpid = NULL, *ppid = NULL, *name = NULL, *cid_info = NULL;
    PyObject *cid = NULL, *full_id = NULL, *cname = NULL; /* owned */
    PyObject *process = NULL, *container = NULL, *k8s = NULL, *conn = NULL, *tmp = NULL;
    PyObject *wrapper = NULL;
    int np = b->fields.n;
    for (int i = 0; i < NSLOTS; i++) ranks[i] = 1 << 30;

    fields = PyTuple_New(np);
    if (fields == NULL) goto done;
    if (kfill > KMAX) kclear();
    cur_gen++;
    int app_pid = 0, app_tid = 0;
    for (int i = 0; i < np; i++) {
        Pair *p = &b->fields.p[i];
        KEntry *ke = p->kconst ? key_entry("%container.info", 15)
                               : key_entry(s + p->ks, p->ke - p->ks);
        if (ke == NULL) goto done;
        PyObject *pair = pair_for(ke, s + p->vs, p->ve - p->vs);
        if (pair == NULL) goto done;
        PyObject *v = PyTuple_GET_ITEM(pair, 1);
        PyTuple_SET_ITEM(fields, i, pair); /* fields owns pair, pair owns v */
        if (i >= b->n_fields) {
            if (ke->kid == K_PID) app_pid = 1;
            if (ke->kid == K_TID) app_tid = 1;
        }
        if (ke->gen != cur_gen && !absent(s, p->vs, p->ve)) {
            /* the first present value of this name (normalize.collect) */
            ke->gen = cur_gen;
            if (ke->kid >= 0) d[ke->kid] = v;
            if (ke->slot >= 0 && ke->rank < ranks[ke->slot]) {
                ranks[ke->slot] = ke->rank;
                vals_own[ke->slot] = v;
            }
        }
    }
    int vpid_from_pid = np > b->n_fields && app_pid && app_tid;

    message = PyUnicode_Substring(line, b->message.a, b->message.e);
    if (message == NULL) goto done;

    /* _text_source */
    PyObject *source = Py_None;
    {
        const char *ms = s + b->message.a;
        Py_ssize_t ml = b->message.e - b->message.a;
        if (ml >= 15 && memcmp(ms, "Falco internal:", 15) == 0) {
            source = str_internal;
        } else {
            PyObject *res = dget(d, K_RESOURCE), *verb = dget(d, K_VERB), *act = dget(d, K_ACTION);
            PyObject *ktr = dget(d, K_KA_TARGET_RESOURCE), *kun = dget(d, K_KA_USER_NAME);
            if (PyErr_Occurred()) goto done;
            if ((res != NULL && (verb != NULL || act != NULL)) || ktr != NULL || kun != NULL)
                source = str_k8s_audit;
        }
    }

    /* _finish */
    PyObject *exec_command = vals_own[S_EXEC_COMMAND], *cmdline = vals_own[S_CMDLINE];
    PyObject *pod = vals_own[S_POD], *user = vals_own[S_USER];
    if (source == str_k8s_audit) {
        cmdline = dget(d, K_PROC_CMDLINE);
        if (exec_command == NULL) exec_command = dget(d, K_COMMAND);
        if (pod == NULL) {
            PyObject *r = dget(d, K_KA_TARGET_RESOURCE);
            if (r != NULL && key_is(r, "pods")) pod = dget(d, K_KA_TARGET_NAME);
        }
        user = OR(dget(d, K_KA_USER_NAME), dget(d, K_USER));
        if (PyErr_Occurred()) goto done;
    }
    if (vpid_from_pid) {
        PyObject *pp = OR(dget(d, K_PROC_DOT_PID), dget(d, K_PROC_PID));
        if (PyErr_Occurred()) goto done;
        pid = to_int(pp);
        if (pid == NULL) goto done;
        vpid = to_int(vals_own[S_VPID]);
        if (vpid == NULL) goto done;
        if (!truthy_int(vpid)) {
            Py_DECREF(vpid);
            PyObject *bare_pid = dget(d, K_PID);
            if (bare_pid == NULL && PyErr_Occurred()) goto done;
            vpid = to_int(bare_pid);
            if (vpid == NULL) goto done;
        }
    } else {
        pid = to_int(vals_own[S_PID]);
        if (pid == NULL) goto done;
        vpid = to_int(vals_own[S_VPID]);
        if (vpid == NULL) goto done;
    }
    ppid = to_int(vals_own[S_PPID]);
    if (ppid == NULL) goto done;

    cid = Py_XNewRef(vals_own[S_CID]);
    full_id = Py_XNewRef(vals_own[S_FULL_ID]);
    cname = Py_XNewRef(vals_own[S_CNAME]);
    {
        PyObject *info = dget(d, K__CONTAINER_INFO);
        if (info == NULL && PyErr_Occurred()) goto done;
        if (info != NULL) {
            int r = info_match(info, &name, &cid_info);
            if (r < 0) goto done;
            if (r > 0) {
                if (cname == NULL) cname = Py_NewRef(name);
                if (cid == NULL) cid = Py_NewRef(cid_info);
                Py_CLEAR(name);
                Py_CLEAR(cid_info);
            }
        }
        PyObject *bare = dget(d, K_CONTAINER);
        if (bare == NULL && PyErr_Occurred()) goto done;
        if (bare != NULL) {
            if (is_hex12_or_host(bare) || is_hex64(bare)) {
                if (cid == NULL) cid = Py_NewRef(bare);
            } else {
                int r = info_match(bare, &name, &cid_info);
                if (r < 0) goto done;
                if (r > 0) {
                    if (cname == NULL) cname = Py_NewRef(name);
                    if (cid == NULL) cid = Py_NewRef(cid_info);
                    Py_CLEAR(name);
                    Py_CLEAR(cid_info);
                } else {
                    const char *bs = (const char *)PyUnicode_1BYTE_DATA(bare);
                    Py_ssize_t bl = PyUnicode_GET_LENGTH(bare);
                    if (!contains_char(bs, 0, bl, ' ') && !contains_char(bs, 0, bl, '=')) {
                        if (cname == NULL) cname = Py_NewRef(bare);
                    }
                }
            }
        }
        if (cid != NULL && is_hex64(cid)) {
            if (full_id == NULL) full_id = Py_NewRef(cid);
            tmp = PyUnicode_Substring(cid, 0, 12);
            if (tmp == NULL) goto done;
            Py_SETREF(cid, tmp);
            tmp = NULL;
        }
        if (full_id != NULL && cid == NULL && is_hex64(full_id)) {
            cid = PyUnicode_Substring(full_id, 0, 12);
            if (cid == NULL) goto done;
        }
    }

    PyObject *file = NULL; /* borrowed */
    {
        static const int FILE_NAMES[] = {K_FD_DOT_NAME, K_FILE, K_FD_NAME, K_FILENAME};
        for (int i = 0; i < 4; i++) {
            PyObject *v = dget(d, FILE_NAMES[i]);
            if (v == NULL && PyErr_Occurred()) goto done;
            if (v != NULL && !has_arrow(v)) {
                file = v;
                break;
            }
        }
    }
    conn = make_connection(d);
    if (conn == NULL) goto done;

    {
        PyObject *pd = new_obj(cls_process);
        if (pd == NULL) goto done;
        if (PyObject_GenericSetAttr(pd, KEY[K_NAME], OR(vals_own[S_NAME], Py_None)) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_CMDLINE], OR(cmdline, Py_None)) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_PID], pid) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_VPID], vpid) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_EXEPATH], OR(vals_own[S_EXEPATH], Py_None)) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_CWD], OR(vals_own[S_CWD], Py_None)) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_USER], OR(user, Py_None)) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_PARENT], OR(vals_own[S_PARENT], Py_None)) < 0 ||
            PyObject_GenericSetAttr(pd, KEY[K_PPID], ppid) < 0) {
            Py_DECREF(pd);
            goto done;
        }
        process = Py_NewRef(pd);
        Py_DECREF(pd);
        if (process == NULL) goto done;
    }
    {
        PyObject *cd = new_obj(cls_container);
        if (cd == NULL) goto done;
        if (PyObject_GenericSetAttr(cd, KEY[K_ID], OR(cid, Py_None)) < 0 ||
            PyObject_GenericSetAttr(cd, KEY[K_FULL_ID], OR(full_id, Py_None)) < 0 ||
            PyObject_GenericSetAttr(cd, KEY[K_NAME], OR(cname, Py_None)) < 0 ||
            PyObject_GenericSetAttr(cd, KEY[K_IMAGE], OR(vals_own[S_IMAGE], Py_None)) < 0 ||
            PyObject_GenericSetAttr(cd, KEY[K_IMAGE_TAG], OR(vals_own[S_IMAGE_TAG], Py_None)) < 0) {
            Py_DECREF(cd);
            goto done;
        }
        container = Py_NewRef(cd);
        Py_DECREF(cd);
        if (container == NULL) goto done;
    }
    {
        PyObject *kd = new_obj(cls_k8s);
        if (kd == NULL) goto done;
        if (PyObject_GenericSetAttr(kd, KEY[K_NAMESPACE], OR(vals_own[S_NS], Py_None)) < 0 ||
            PyObject_GenericSetAttr(kd, KEY[K_POD], OR(pod, Py_None)) < 0 ||
            PyObject_GenericSetAttr(kd, KEY[K_POD_UID], OR(vals_own[S_POD_UID], Py_None)) < 0) {
            Py_DECREF(kd);
            goto done;
        }
        k8s = Py_NewRef(kd);
        Py_DECREF(kd);
        if (k8s == NULL) goto done;
    }

    if (m->start > 0) {
        wrapper = wrapper_for(line, s, m->start);
        if (wrapper == NULL) goto done;
    } else {
        wrapper = Py_NewRef(empty_tuple);
    }

    alert_d = new_obj(cls_alert);
    if (alert_d == NULL) goto done;
    if (PyObject_GenericSetAttr(alert_d, KEY[K_RAW], line) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_SOURCE_FORMAT], str_text) < 0 ||
        put(alert_d, K_TIME, PyUnicode_Substring(line, m->start, m->time_end)) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_PRIORITY], prio_out[m->prio]) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_RULE], Py_None) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_MESSAGE], message) < 0 ||
        put(alert_d, K_OUTPUT, PyUnicode_Substring(line, m->start, n)) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_OUTPUT_STYLE], b->style) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_FIELDS], fields) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_PROCESS], process) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_CONTAINER], container) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_K8S], k8s) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_NODE], Py_None) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_CONNECTION], conn) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_TAGS], empty_tuple) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_SOURCE], source) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_UUID], Py_None) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_EVENT_TIME_NS], Py_None) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_LINE], lineno) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_END_LINE], lineno) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_FILE], OR(file, Py_None)) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_EXEC_COMMAND], OR(exec_command, Py_None)) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_OUTPUT_FIELDS], empty_tuple) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_TRUNCATED], b->truncated ? Py_True : Py_False) < 0 ||
        PyObject_GenericSetAttr(alert_d, KEY[K_WRAPPER], wrapper) < 0)
        goto done;
    result = Py_NewRef(alert_d);

done:
    Py_XDECREF(fields);
    Py_XDECREF(message);
    Py_XDECREF(alert_d);
    Py_XDECREF(pid);
    Py_XDECREF(vpid);
    Py_XDECREF(ppid);
    Py_XDECREF(name);
    Py_XDECREF(cid_info);
    Py_XDECREF(cid);
    Py_XDECREF(full_id);
    Py_XDECREF(cname);
    Py_XDECREF(process);
    Py_XDECREF(container);
    Py_XDECREF(k8s);
    Py_XDECREF(conn);
    Py_XDECREF(tmp);
    Py_XDECREF(wrapper);
    return result;
}

static int busy;
static Body body_buf;

static PyObject *py_text_alert(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "text_alert(line, lineno) takes two arguments");
        return NULL;
    }
    if (cls_alert == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "falcoir.core.parse._speedups is not configured");
        return NULL;
    }
    PyObject *line = args[0], *lineno = args[1];
    if (!PyUnicode_CheckExact(line) || !PyUnicode_IS_ASCII(line)) Py_RETURN_NONE;
    Py_ssize_t n = PyUnicode_GET_LENGTH(line);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(line);
    Py_ssize_t full = n;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--; /* rstrip("\r\n") */
    if (n == 0 || n > MAX_LINE || s[0] == '{') Py_RETURN_NONE; /* JSON: no cost to it */
    unsigned int bad = 0; /* no early exit: the compiler vectorises this loop */
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bad |= (unsigned int)(c < 0x20) | (unsigned int)(c > 0x7e) | (unsigned int)(c == '{');
    }
    if (bad) Py_RETURN_NONE;
    Anchor m;
    if (!anchor_search(s, n, &m)) Py_RETURN_NONE;
    /* Not re-entrant (the caches and the buffer below are shared): a call made while
     * another runs, from a finaliser the garbage collector ran, is declined. */
    if (busy) Py_RETURN_NONE;
    busy = 1;
    Body *b = &body_buf;
    split_body(s, m.end, n, b);
    PyObject *res;
    if (b->fields.overflow) {
        res = Py_NewRef(Py_None);
    } else if (n == full) {
        res = build(line, s, n, &m, b, lineno);
    } else {
        PyObject *stripped = PyUnicode_Substring(line, 0, n);
        res = stripped == NULL ? NULL : build(stripped, s, n, &m, b, lineno);
        Py_XDECREF(stripped);
    }
    busy = 0;
    return res;
}

static int copy_words(PyObject *seq, WordSet *set) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of str");
    if (fast == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    Word *words = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Word));
    if (words == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    set->words = words;
    set->count = 0;
    memset(set->bloom, 0, sizeof(set->bloom));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyUnicode_Check(w) || !PyUnicode_IS_ASCII(w)) continue;
        Py_ssize_t len = PyUnicode_GET_LENGTH(w);
        char *copy = PyMem_Malloc((size_t)len + 1);
        if (copy == NULL) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, PyUnicode_1BYTE_DATA(w), (size_t)len + 1);
        words[set->count].s = copy;
        words[set->count].n = len;
        set->count++;
        unsigned bit = bloom_bit(copy, len);
        set->bloom[bit >> 6] |= 1ULL << (bit & 63);
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *py_configure(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *alert, *process, *container, *k8s, *conn, *slots, *known, *free_text;
    if (!PyArg_ParseTuple(args, "OOOOOO!OO:configure", &alert, &process, &container, &k8s,
                          &conn, &PyDict_Type, &slots, &known, &free_text))
        return NULL;
    PyObject *classes[5] = {alert, process, container, k8s, conn};
    for (int i = 0; i < 5; i++) {
        if (!PyType_Check(classes[i])) {
            PyErr_SetString(PyExc_TypeError, "configure: expected classes");
            return NULL;
        }
    }
    if (cls_alert != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure: already configured");
        return NULL;
    }
    /* slot names -> (index, rank), validated here so build() can trust them */
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(slots, &pos, &k, &v)) {
        if (!PyUnicode_Check(k) || !PyTuple_Check(v) || PyTuple_GET_SIZE(v) != 2 ||
            !PyLong_Check(PyTuple_GET_ITEM(v, 0)) || !PyLong_Check(PyTuple_GET_ITEM(v, 1))) {
            PyErr_SetString(PyExc_TypeError, "configure: slots maps str to (int, int)");
            return NULL;
        }
    }
    if (copy_words(known, &known_keys) < 0) return NULL;
    if (copy_words(free_text, &free_keys) < 0) return NULL;
    cls_alert = Py_NewRef(alert);
    cls_process = Py_NewRef(process);
    cls_container = Py_NewRef(container);
    cls_k8s = Py_NewRef(k8s);
    cls_connection = Py_NewRef(conn);
    slots_map = Py_NewRef(slots);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"text_alert", (PyCFunction)(void (*)(void))py_text_alert, METH_FASTCALL,
     "text_alert(line, lineno) -> Alert | None: the Alert of a plain text alert line, or None "
     "when the pure-Python parser must read the line."},
    {"configure", py_configure, METH_VARARGS, "configure(...): set once at import."},
    {"wrapper", py_wrapper, METH_O,
     "wrapper(prefix) -> tuple | None: textline._wrapper_of(prefix) for printable ASCII, "
     "else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "The C fast path of falcoir's text-alert parser.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    empty_tuple = PyTuple_New(0);
    str_empty = PyUnicode_InternFromString("");
    str_text = PyUnicode_InternFromString("text");
    str_info_key = PyUnicode_InternFromString("%container.info");
    str_pipe = PyUnicode_InternFromString("pipe");
    str_paren = PyUnicode_InternFromString("paren");
    str_bare = PyUnicode_InternFromString("bare");
    str_internal = PyUnicode_InternFromString("internal");
    str_k8s_audit = PyUnicode_InternFromString("k8s_audit");
    str_pods = PyUnicode_InternFromString("pods");
    if (!empty_tuple || !str_empty || !str_text || !str_info_key || !str_pipe || !str_paren ||
        !str_bare || !str_internal || !str_k8s_audit || !str_pods)
        goto fail;
    for (int i = 0; i < K_COUNT; i++) {
        KEY[i] = PyUnicode_InternFromString(KEY_TEXT[i]);
        if (KEY[i] == NULL) goto fail;
    }
    for (int i = 0; i < W_NAMES; i++) {
        w_names[i] = PyUnicode_InternFromString(W_NAME_TEXT[i]);
        if (w_names[i] == NULL) goto fail;
    }
    str_kind = PyUnicode_InternFromString("kind");
    if (str_kind == NULL) goto fail;
    for (int i = 0; i < 9; i++) {
        prio_out[i] = PyUnicode_InternFromString(PRIO_OUT[i]);
        if (prio_out[i] == NULL) goto fail;
    }
    if (PyModule_AddIntConstant(mod, "VERSION", SPEEDUPS_VERSION) < 0) goto fail;
    if (PyModule_AddIntConstant(mod, "MAX_LINE", MAX_LINE) < 0) goto fail;
    return mod;
fail:
    Py_DECREF(mod);
    return NULL;
}
