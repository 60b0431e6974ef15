/* stack_box: the walk by the unwind tables. See the header.
 *
 * Terms (DWARF call-frame information, as .eh_frame carries it): the CFA
 * of a frame is the value rsp had in its caller just before the call, so
 * the return address lies at CFA - 8 and the caller's rsp, after the
 * return, is the CFA. A frame's FDE holds a small program that says, for
 * each address of its function, how the CFA is computed and where the
 * caller's registers were saved; its CIE holds the program's common start.
 * eh_frame_hdr (found by _dl_find_object) is a sorted table from function
 * start to FDE. */
#include "hakmem_internal.h"
#include "base/stack_box.h"

#include <dlfcn.h>
#include <string.h>
#include <unwind.h>

/* ------------------------------------------------------------------------ */
/* libgcc's walk (the fallback). */

typedef struct {
    void **buf;
    int max, n;
} hk_lg_walk_t;

static _Unwind_Reason_Code lg_frame(struct _Unwind_Context *ctx, void *arg)
{
    hk_lg_walk_t *w = arg;
    if (w->n >= w->max)
        return _URC_END_OF_STACK;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (!ip)
        return _URC_END_OF_STACK;
    w->buf[w->n++] = (void *)ip;
    return _URC_NO_REASON;
}

/* libgcc reports its caller's frames too: the walk starts at `first`, the
 * return address the capture was asked from (if it is among the first few
 * frames, as it is unless a compiler merged frames). */
static int lg_walk(void **buf, int max, int skip, uintptr_t first)
{
    void *tmp[HK_STACK_MAX + 8];
    int want = max + skip + 8;
    hk_lg_walk_t w = {tmp, want < HK_STACK_MAX + 8 ? want : HK_STACK_MAX + 8, 0};
    _Unwind_Backtrace(lg_frame, &w);
    int start = 0;
    for (int i = 0; i < w.n && i < 8; i++)
        if ((uintptr_t)tmp[i] == first) {
            start = i;
            break;
        }
    int n = 0;
    for (int i = start + skip; i < w.n && n < max; i++)
        buf[n++] = tmp[i];
    return n;
}

/* ------------------------------------------------------------------------ */
/* Reading the tables. */

static uint64_t rd_uleb(const uint8_t **pp, const uint8_t *end)
{
    uint64_t v = 0;
    unsigned shift = 0;
    const uint8_t *p = *pp;
    while (p < end) {
        uint8_t b = *p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    *pp = p;
    return v;
}

static int64_t rd_sleb(const uint8_t **pp, const uint8_t *end)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    const uint8_t *p = *pp;
    while (p < end) {
        b = *p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (shift < 64 && (b & 0x40))
        v |= ~(uint64_t)0 << shift;
    *pp = p;
    return (int64_t)v;
}

/* A value encoded as `enc` (DW_EH_PE_*): the value formats, absolute or
 * relative to its own address; false for what the walk does not read
 * (datarel, aligned, indirect). */
static bool rd_enc(const uint8_t **pp, const uint8_t *end, uint8_t enc, uintptr_t *out)
{
    const uint8_t *p = *pp;
    uintptr_t at = (uintptr_t)p;
    uint64_t v;
    switch (enc & 0x0f) {
    case 0x00: /* absptr */
    case 0x04: /* udata8 */
    case 0x0c: /* sdata8 */
        if (end - p < 8)
            return false;
        memcpy(&v, p, 8);
        p += 8;
        break;
    case 0x01:
        v = rd_uleb(&p, end);
        break;
    case 0x09:
        v = (uint64_t)rd_sleb(&p, end);
        break;
    case 0x02:
    case 0x0a: {
        uint16_t x;
        if (end - p < 2)
            return false;
        memcpy(&x, p, 2);
        p += 2;
        v = (enc & 0x08) ? (uint64_t)(int64_t)(int16_t)x : x;
        break;
    }
    case 0x03:
    case 0x0b: {
        uint32_t x;
        if (end - p < 4)
            return false;
        memcpy(&x, p, 4);
        p += 4;
        v = (enc & 0x08) ? (uint64_t)(int64_t)(int32_t)x : x;
        break;
    }
    default:
        return false;
    }
    if ((enc & 0x70) == 0x10)
        v += at;
    else if ((enc & 0x70) != 0 || (enc & 0x80))
        return false;
    *pp = p;
    *out = (uintptr_t)v;
    return true;
}

typedef struct {
    uint64_t code_align;
    int64_t data_align;
    uint8_t fde_enc;
    bool has_z, signal;
    const uint8_t *insns, *end;
} hk_cie_t;

/* A CIE the walk understands: versions 1, 3, 4; augmentations z, R, P, L,
 * S; the return address in DWARF register 16. */
static bool parse_cie(const uint8_t *cie, hk_cie_t *c)
{
    uint32_t len, id;
    memcpy(&len, cie, 4);
    if (len == 0 || len == 0xffffffffu)
        return false;
    const uint8_t *p = cie + 4, *end = p + len;
    memcpy(&id, p, 4);
    p += 4;
    if (id != 0)
        return false;
    uint8_t version = *p++;
    if (version != 1 && version != 3 && version != 4)
        return false;
    const char *aug = (const char *)p;
    size_t al = strnlen(aug, (size_t)(end - p));
    if (al == (size_t)(end - p))
        return false;
    p += al + 1;
    if (version == 4) {
        if (end - p < 2 || p[0] != 8 || p[1] != 0)
            return false;
        p += 2;
    }
    c->code_align = rd_uleb(&p, end);
    c->data_align = rd_sleb(&p, end);
    uint64_t ra = version == 1 ? *p++ : rd_uleb(&p, end);
    if (ra != 16)
        return false;
    c->fde_enc = 0;
    c->has_z = c->signal = false;
    if (aug[0] == 'z') {
        c->has_z = true;
        uint64_t alen = rd_uleb(&p, end);
        if (alen > (uint64_t)(end - p))
            return false;
        const uint8_t *aend = p + alen;
        for (const char *a = aug + 1; *a; a++) {
            uintptr_t skip;
            switch (*a) {
            case 'R':
                c->fde_enc = *p++;
                break;
            case 'L':
                p++;
                break;
            case 'P': {
                uint8_t e = *p++;
                if (!rd_enc(&p, aend, e & 0x0f, &skip))
                    return false;
                break;
            }
            case 'S':
                c->signal = true;
                break;
            default:
                return false;
            }
        }
        p = aend;
    } else if (aug[0] != '\0') {
        return false;
    }
    c->insns = p;
    c->end = end;
    return true;
}

/* ------------------------------------------------------------------------ */
/* The call-frame program, reduced to what the walk needs: the CFA's
 * register and offset, and the rules of rbp and the return address. */

enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };
enum { HOW_SAME, HOW_OFFSET, HOW_UNDEF, HOW_OTHER };
#define HK_CFA_STATES 8

typedef struct {
    uint64_t cfa_reg;
    int64_t cfa_off;
    bool cfa_expr;
    uint8_t how[2]; /* [0] rbp, [1] the return address */
    int64_t off[2]; /* HOW_OFFSET: saved at CFA + off */
} hk_cfa_t;

static int reg_slot(uint64_t reg) { return reg == DW_RBP ? 0 : reg == DW_RA ? 1 : -1; }

static void set_rule(hk_cfa_t *s, uint64_t reg, uint8_t how, int64_t off)
{
    int k = reg_slot(reg);
    if (k >= 0) {
        s->how[k] = how;
        s->off[k] = off;
    }
}

/* The rule the CIE's program gave the register. */
static void restore_rule(hk_cfa_t *s, const hk_cfa_t *init, uint64_t reg)
{
    int k = reg_slot(reg);
    if (k >= 0)
        set_rule(s, reg, init->how[k], init->off[k]);
}

/* Run the program [p, end) from address loc until the row that holds pc;
 * false if it holds an instruction the walk does not know. */
static bool run_cfa(const uint8_t *p, const uint8_t *end, const hk_cie_t *c, uintptr_t loc, uintptr_t pc,
                    const hk_cfa_t *init, hk_cfa_t *s)
{
    hk_cfa_t saved[HK_CFA_STATES];
    int depth = 0;
    while (p < end) {
        uint8_t op = *p++;
        uint64_t reg, u;
        uint16_t u16;
        uint32_t u32;
        uintptr_t a;
        switch (op & 0xc0) {
        case 0x40: /* advance_loc */
            loc += (op & 0x3f) * c->code_align;
            if (loc > pc)
                return true;
            continue;
        case 0x80: /* offset */
            u = rd_uleb(&p, end);
            set_rule(s, op & 0x3f, HOW_OFFSET, (int64_t)u * c->data_align);
            continue;
        case 0xc0: /* restore */
            restore_rule(s, init, op & 0x3f);
            continue;
        }
        switch (op) {
        case 0x00: /* nop */
            break;
        case 0x01: /* set_loc */
            if (!rd_enc(&p, end, c->fde_enc, &a))
                return false;
            loc = a;
            break;
        case 0x02: /* advance_loc1 */
            loc += *p++ * c->code_align;
            break;
        case 0x03: /* advance_loc2 */
            memcpy(&u16, p, 2);
            p += 2;
            loc += u16 * c->code_align;
            break;
        case 0x04: /* advance_loc4 */
            memcpy(&u32, p, 4);
            p += 4;
            loc += u32 * c->code_align;
            break;
        case 0x05: /* offset_extended */
            reg = rd_uleb(&p, end);
            u = rd_uleb(&p, end);
            set_rule(s, reg, HOW_OFFSET, (int64_t)u * c->data_align);
            break;
        case 0x06: /* restore_extended */
            restore_rule(s, init, rd_uleb(&p, end));
            break;
        case 0x07: /* undefined */
            set_rule(s, rd_uleb(&p, end), HOW_UNDEF, 0);
            break;
        case 0x08: /* same_value */
            set_rule(s, rd_uleb(&p, end), HOW_SAME, 0);
            break;
        case 0x09: /* register */
            reg = rd_uleb(&p, end);
            rd_uleb(&p, end);
            set_rule(s, reg, HOW_OTHER, 0);
            break;
        case 0x0a: /* remember_state (the CFA rule too, as GCC expects) */
            if (depth == HK_CFA_STATES)
                return false;
            saved[depth++] = *s;
            break;
        case 0x0b: /* restore_state */
            if (depth == 0)
                return false;
            *s = saved[--depth];
            break;
        case 0x0c: /* def_cfa */
            s->cfa_reg = rd_uleb(&p, end);
            s->cfa_off = (int64_t)rd_uleb(&p, end);
            s->cfa_expr = false;
            break;
        case 0x0d: /* def_cfa_register */
            s->cfa_reg = rd_uleb(&p, end);
            s->cfa_expr = false;
            break;
        case 0x0e: /* def_cfa_offset */
            s->cfa_off = (int64_t)rd_uleb(&p, end);
            break;
        case 0x0f: /* def_cfa_expression */
            u = rd_uleb(&p, end);
            p += u;
            s->cfa_expr = true;
            break;
        case 0x10: /* expression */
        case 0x16: /* val_expression */
            reg = rd_uleb(&p, end);
            u = rd_uleb(&p, end);
            p += u;
            set_rule(s, reg, HOW_OTHER, 0);
            break;
        case 0x11: /* offset_extended_sf */
            reg = rd_uleb(&p, end);
            set_rule(s, reg, HOW_OFFSET, rd_sleb(&p, end) * c->data_align);
            break;
        case 0x12: /* def_cfa_sf */
            s->cfa_reg = rd_uleb(&p, end);
            s->cfa_off = rd_sleb(&p, end) * c->data_align;
            s->cfa_expr = false;
            break;
        case 0x13: /* def_cfa_offset_sf */
            s->cfa_off = rd_sleb(&p, end) * c->data_align;
            break;
        case 0x14: /* val_offset */
            reg = rd_uleb(&p, end);
            rd_uleb(&p, end);
            set_rule(s, reg, HOW_OTHER, 0);
            break;
        case 0x15: /* val_offset_sf */
            reg = rd_uleb(&p, end);
            rd_sleb(&p, end);
            set_rule(s, reg, HOW_OTHER, 0);
            break;
        case 0x2e: /* GNU_args_size */
            rd_uleb(&p, end);
            break;
        case 0x2f: /* GNU_negative_offset_extended */
            reg = rd_uleb(&p, end);
            u = rd_uleb(&p, end);
            set_rule(s, reg, HOW_OFFSET, -(int64_t)u * c->data_align);
            break;
        default:
            return false;
        }
        if (op <= 0x04 && loc > pc) /* the row of pc ends here */
            return true;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* The rule of a return address, and its cache. */

enum { RULE_WALK = 1, RULE_END = 2, RULE_FALLBACK = 3 };

typedef struct {
    int kind;
    bool cfa_bp;   /* the CFA is rbp + cfa_off (else rsp + cfa_off) */
    bool bp_saved; /* the caller's rbp is at CFA + bp_off (else rbp is kept) */
    int64_t cfa_off, bp_off;
} hk_rule_t;

/* The eh_frame_hdr of the object that holds pc, or NULL: no object holds
 * it (generated code; or a static program before the C library set up
 * its object table), the object has none (a static program: libgcc finds
 * its tables another way), or this C library cannot say (glibc before
 * 2.35). The walk is then libgcc's. */
static const uint8_t *find_eh_frame_hdr(uintptr_t pc)
{
#if HAVE_DL_FIND_OBJECT_CALL
    struct dl_find_object o;
    if (_dl_find_object((void *)pc, &o) == 0)
        return o.dlfo_eh_frame;
#endif
    return NULL;
}

/* Find the FDE of pc and run its program up to pc. */
static hk_rule_t rule_from_tables(uintptr_t pc)
{
    hk_rule_t r = {.kind = RULE_FALLBACK};
    const uint8_t *hdr = find_eh_frame_hdr(pc);
    if (!hdr || hdr[0] != 1)
        return r;
    const uint8_t *p = hdr + 4;
    uintptr_t eh_frame, count;
    /* A table of (start, FDE) pairs, 4-byte offsets from hdr: the form
     * every linker writes (else libgcc searches; so does the fallback). */
    if (!rd_enc(&p, p + 16, hdr[1], &eh_frame) || !rd_enc(&p, p + 16, hdr[2], &count) || hdr[3] != 0x3b || !count)
        return r;
    const uint8_t *tab = p;
    size_t lo = 0, hi = count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        int32_t loc;
        memcpy(&loc, tab + 8 * mid, 4);
        if ((uintptr_t)hdr + (intptr_t)loc <= pc)
            lo = mid;
        else
            hi = mid;
    }
    int32_t loc0, fde_off;
    memcpy(&loc0, tab + 8 * lo, 4);
    memcpy(&fde_off, tab + 8 * lo + 4, 4);
    if ((uintptr_t)hdr + (intptr_t)loc0 > pc) {
        r.kind = RULE_END;
        return r;
    }
    const uint8_t *fde = hdr + fde_off;
    uint32_t len, cie_ptr;
    memcpy(&len, fde, 4);
    if (len == 0 || len == 0xffffffffu)
        return r;
    const uint8_t *fp = fde + 4, *fend = fp + len;
    memcpy(&cie_ptr, fp, 4);
    hk_cie_t c;
    if (!parse_cie(fp - cie_ptr, &c) || c.signal)
        return r;
    fp += 4;
    uintptr_t start, range;
    if (!rd_enc(&fp, fend, c.fde_enc, &start) || !rd_enc(&fp, fend, c.fde_enc & 0x0f, &range))
        return r;
    if (pc < start || pc - start >= range) {
        r.kind = RULE_END; /* between functions: no FDE covers it */
        return r;
    }
    if (c.has_z) {
        uint64_t alen = rd_uleb(&fp, fend);
        if (alen > (uint64_t)(fend - fp))
            return r;
        fp += alen;
    }
    hk_cfa_t init = {.how = {HOW_SAME, HOW_SAME}}, s;
    if (!run_cfa(c.insns, c.end, &c, 0, UINTPTR_MAX, &init, &init))
        return r;
    s = init;
    if (!run_cfa(fp, fend, &c, start, pc, &init, &s))
        return r;
    if (s.how[1] == HOW_UNDEF) {
        r.kind = RULE_END; /* the outermost frame (_start, a thread's start) */
        return r;
    }
    if (s.cfa_expr || (s.cfa_reg != DW_RSP && s.cfa_reg != DW_RBP) || s.how[1] != HOW_OFFSET || s.off[1] != -8 ||
        s.how[0] == HOW_OTHER)
        return r;
    r.kind = RULE_WALK;
    r.cfa_bp = s.cfa_reg == DW_RBP;
    r.cfa_off = s.cfa_off;
    r.bp_saved = s.how[0] == HOW_OFFSET;
    r.bp_off = s.off[0];
    return r;
}

/* The cache: one 64-bit word per entry, so that threads read and write it
 * without a lock and never see half an entry: the return address (user
 * space: below 2^47) in the high 47 bits, the rule in the low 17: kind (2
 * bits), CFA from rbp (1), CFA offset / 8 (9 bits: up to 4 KiB), rbp saved
 * (1), -(rbp's offset / 8) - 1 (4 bits: 8..128 bytes below the CFA).
 * Rules that do not fit are looked up in the tables every time. Direct
 * mapped: a program whose sampled stacks cross more than a few thousand
 * return addresses pays some lookups again. */
#define HK_RULE_BITS 17
#define HK_RULE_SLOTS_LG 12
static _Atomic uint64_t g_rules[1u << HK_RULE_SLOTS_LG];

static uint64_t rule_pack(uintptr_t ip, const hk_rule_t *r)
{
    if (ip >> 47)
        return 0;
    uint64_t bits = (uint64_t)r->kind;
    if (r->kind == RULE_WALK) {
        if (r->cfa_off < 8 || r->cfa_off % 8 || r->cfa_off / 8 > 511)
            return 0;
        if (r->bp_saved && (r->bp_off > -8 || r->bp_off < -128 || r->bp_off % 8))
            return 0;
        bits |= (uint64_t)r->cfa_bp << 2 | (uint64_t)(r->cfa_off / 8) << 3;
        if (r->bp_saved)
            bits |= (uint64_t)1 << 12 | (uint64_t)(-r->bp_off / 8 - 1) << 13;
    }
    return (uint64_t)ip << HK_RULE_BITS | bits;
}

static void rule_unpack(uint64_t e, hk_rule_t *r)
{
    r->kind = (int)(e & 3);
    r->cfa_bp = (e >> 2) & 1;
    r->cfa_off = (int64_t)((e >> 3) & 511) * 8;
    r->bp_saved = (e >> 12) & 1;
    r->bp_off = -(int64_t)(((e >> 13) & 15) + 1) * 8;
}

/* The rule of a frame whose return address is ip (its call is at ip - 1). */
static hk_rule_t rule_of(uintptr_t ip)
{
    size_t slot = (size_t)((ip * 0x9E3779B97F4A7C15ull) >> (64 - HK_RULE_SLOTS_LG));
    uint64_t e = atomic_load_explicit(&g_rules[slot], memory_order_relaxed);
    hk_rule_t r;
    if (e && (e >> HK_RULE_BITS) == ip) {
        rule_unpack(e, &r);
        return r;
    }
    r = rule_from_tables(ip - 1);
    e = rule_pack(ip, &r);
    if (e)
        atomic_store_explicit(&g_rules[slot], e, memory_order_relaxed);
    return r;
}

/* The largest frame the walk follows: a CFA further above the previous
 * one means a stack it does not understand. */
#define HK_FRAME_MAX ((uintptr_t)1 << 20)

/* Walk from a frame whose return address is ip, whose caller's rsp (after
 * the return) is sp and rbp is bp. -1: a frame needs libgcc (*partial:
 * the frames stored before it). */
static int cfi_walk(uintptr_t ip, uintptr_t sp, uintptr_t bp, void **buf, int max, int skip, int *partial)
{
    int n = 0;
    for (int depth = 0; n < max && depth < HK_STACK_MAX + skip; depth++) {
        if (depth >= skip)
            buf[n++] = (void *)ip;
        hk_rule_t r = rule_of(ip);
        *partial = n;
        if (r.kind == RULE_FALLBACK)
            return -1;
        if (r.kind == RULE_END)
            break;
        uintptr_t cfa = (r.cfa_bp ? bp : sp) + (uintptr_t)r.cfa_off;
        if (cfa <= sp || cfa - sp > HK_FRAME_MAX || (cfa & 7))
            break;
        ip = *(const uintptr_t *)(cfa - 8);
        if (r.bp_saved)
            bp = *(const uintptr_t *)(cfa + (uintptr_t)r.bp_off);
        sp = cfa;
        if (ip < HK_PAGE_SIZE)
            break;
    }
    return n;
}

/* libgcc finds a static program's tables only once its start-up code has
 * registered them (a constructor); before that its unwinder aborts on its
 * own frame. So it is asked only if it knows where its own frame is. */
struct hk_eh_bases {
    void *tbase, *dbase, *func;
};
extern const void *_Unwind_Find_FDE(void *pc, struct hk_eh_bases *bases);

static bool libgcc_ready(void)
{
    struct hk_eh_bases bases;
    return _Unwind_Find_FDE((char *)(uintptr_t)_Unwind_Backtrace + 1, &bases) != NULL;
}

HK_NOINLINE int hk_stack_capture_libgcc(void **buf, int max, int skip)
{
    if (max > HK_STACK_MAX)
        max = HK_STACK_MAX;
    if (max <= 0)
        return 0;
    int n = lg_walk(buf, max, skip, (uintptr_t)__builtin_return_address(0));
    __asm__ volatile("" ::: "memory"); /* not a tail call: our caller's frame stays where lg_walk looks */
    return n;
}

/* Both entry points: __builtin_frame_address gives the function a frame
 * pointer, so its frame holds the caller's rbp and the return address, and
 * its CFA is 16 bytes above it (the x86-64 frame layout; the walk only runs
 * there). */
static inline __attribute__((always_inline)) int capture(void **buf, int max, int skip, void *const *fp,
                                                          bool fallback)
{
    if (max > HK_STACK_MAX)
        max = HK_STACK_MAX;
    if (max <= 0)
        return 0;
    uintptr_t ip = (uintptr_t)fp[1];
    int n = -1, partial = 0;
    if (have_cfi_walk)
        n = cfi_walk(ip, (uintptr_t)(fp + 2), (uintptr_t)fp[0], buf, max, skip, &partial);
    if (n < 0 && fallback)
        n = libgcc_ready() ? lg_walk(buf, max, skip, ip) : partial;
    return n;
}

HK_NOINLINE int hk_stack_capture(void **buf, int max, int skip)
{
    int n = capture(buf, max, skip, __builtin_frame_address(0), true);
    __asm__ volatile("" ::: "memory"); /* not a tail call (see hk_stack_capture_libgcc) */
    return n;
}

HK_NOINLINE int hk_stack_capture_cfi(void **buf, int max, int skip)
{
    int n = capture(buf, max, skip, __builtin_frame_address(0), false);
    __asm__ volatile("" ::: "memory");
    return n;
}
