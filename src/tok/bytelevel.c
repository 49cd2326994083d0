/* The GPT-2 byte <-> unicode map (ByteLevel pre-tokenizer and decoder).
 *
 * Printable bytes keep their own code point: '!'..'~' (33..126), U+00A1..U+00AC (161..172) and
 * U+00AE..U+00FF (174..255). The other 68 bytes (controls, space, DEL, NBSP, soft hyphen) are
 * given U+0100, U+0101, ... in increasing byte order, so that every byte is a visible character
 * and a space becomes U+0120 'Ġ'. */
#include "tok/tok_internal.h"

static bool lt_bytelevel_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

/* spelled out so it is a constant; test_tok checks it against the rule above */
const uint16_t lt_bytelevel_cp[256] = {
    /* 0..32: controls and space -> U+0100..U+0120 */
    0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109, 0x10A, 0x10B, 0x10C, 0x10D, 0x10E,
    0x10F, 0x110, 0x111, 0x112, 0x113, 0x114, 0x115, 0x116, 0x117, 0x118, 0x119, 0x11A, 0x11B, 0x11C, 0x11D,
    0x11E, 0x11F, 0x120,
    /* 33..126: themselves */
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
    60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86,
    87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
    111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126,
    /* 127..160: DEL, C1 controls, NBSP -> U+0121..U+0142 */
    0x121, 0x122, 0x123, 0x124, 0x125, 0x126, 0x127, 0x128, 0x129, 0x12A, 0x12B, 0x12C, 0x12D, 0x12E, 0x12F,
    0x130, 0x131, 0x132, 0x133, 0x134, 0x135, 0x136, 0x137, 0x138, 0x139, 0x13A, 0x13B, 0x13C, 0x13D, 0x13E,
    0x13F, 0x140, 0x141, 0x142,
    /* 161..172: themselves */
    161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172,
    /* 173: soft hyphen -> U+0143 */
    0x143,
    /* 174..255: themselves */
    174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194,
    195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215,
    216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236,
    237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255};

int lt_bytelevel_byte(uint32_t cp) {
    if (cp < 256) return lt_bytelevel_printable((int)cp) ? (int)cp : -1;
    if (cp >= 0x100 && cp <= 0x143) {
        /* the n-th non-printable byte, in increasing order */
        int n = (int)(cp - 0x100);
        for (int b = 0; b < 256; b++)
            if (!lt_bytelevel_printable(b) && n-- == 0) return b;
    }
    return -1;
}
