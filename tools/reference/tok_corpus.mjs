// Deterministic tokenizer-conformance corpus: one JSON string per line (JSONL) on stdout.
//
//   node tools/reference/tok_corpus.mjs [--seed N] [--tags FILE] > corpus.jsonl
//   node tools/reference/tok_corpus.mjs [--seed N] --text > corpus.txt     (benchmark text)
//   node tools/reference/tok_corpus.mjs [--seed N] --prose BYTES > prose.txt
//
// --tags FILE writes, line for line, the category of each string (for mismatch reports).
// --text writes the same strings as plain text, one per line (strings holding NUL left out).
// --prose BYTES writes only English prose and dialogue paragraphs, at least BYTES of them.
// Everything here is composed from this file's own word lists and templates with a seeded PRNG,
// so the same seed gives the same bytes on every machine (no Math.random, no locale, no clock).
// The only library call whose output could depend on the Node build is String.normalize, used
// on long-stable characters (Latin, Greek, Vietnamese, Hangul) to make NFC/NFD pairs.
//
// Categories (about 6,000 strings): English prose and dialogue; CJK (Chinese, Japanese with kana,
// Korean incl. decomposed jamo); Arabic, Hebrew, Hindi, Thai, Cyrillic, Greek, Vietnamese;
// emoji (ZWJ, skin tones, flags, keycaps, tag sequences); combining marks in NFC and NFD; code
// with tabs and whitespace runs up to hundreds; Unicode spaces; digits of every length 1..40 and
// other-script digits; contractions in mixed case; special-token text of Llama 2/3 and Qwen3
// inside ordinary text; \r, \r\n, empty and space-only strings; very long words; random mixtures;
// random code points from all planes (no surrogates).
import { writeFileSync } from "node:fs";

// ------------------------------------------------------------------ PRNG (xorshift128+ on 32-bit halves)
class Rng {
  constructor(seed) {
    // splitmix32-style scrambling of the seed into four non-zero words
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0 || 1;
    };
    this.a = next(); this.b = next(); this.c = next(); this.d = next();
  }
  // xoshiro128** step: 32 random bits
  u32() {
    const r = Math.imul(((Math.imul(this.b, 5) << 7) | (Math.imul(this.b, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c ^= this.a; this.d ^= this.b; this.b ^= this.c; this.a ^= this.d;
    this.c = (this.c ^ t) >>> 0;
    this.d = ((this.d << 11) | (this.d >>> 21)) >>> 0;
    this.a >>>= 0; this.b >>>= 0;
    return r;
  }
  int(n) { return n <= 1 ? 0 : this.u32() % n; }          // [0, n); bias is irrelevant here
  range(lo, hi) { return lo + this.int(hi - lo + 1); }      // [lo, hi]
  pick(a) { return a[this.int(a.length)]; }
  chance(p) { return this.u32() / 4294967296 < p; }
}

// ------------------------------------------------------------------ word lists (written for this corpus)
const W = {
  det: ["the", "a", "every", "this", "that", "one", "some", "no", "each", "another"],
  adj: ["quiet", "bright", "old", "narrow", "heavy", "careful", "green", "broken", "early", "tired", "honest",
    "strange", "wooden", "distant", "warm", "empty", "curious", "small", "enormous", "patient", "silver",
    "crooked", "gentle", "loud", "rusty", "clever", "humble", "frozen", "golden", "restless"],
  noun: ["river", "teacher", "window", "garden", "engine", "letter", "village", "market", "bicycle", "lantern",
    "harbor", "kitchen", "doctor", "mountain", "notebook", "bridge", "farmer", "library", "violin", "storm",
    "tower", "sailor", "orchard", "painter", "station", "candle", "island", "mirror", "soldier", "pilot",
    "compiler", "database", "kernel", "tokenizer", "gradient", "checkpoint", "server", "network"],
  verb: ["watched", "carried", "opened", "followed", "repaired", "painted", "found", "described", "remembered",
    "pushed", "counted", "visited", "answered", "built", "lost", "borrowed", "measured", "crossed", "cleaned",
    "ignored", "promised", "tested", "compiled", "trained", "deployed", "refactored"],
  verbBase: ["go", "see", "wait", "try", "stay", "help", "listen", "run", "think", "call", "start", "finish", "read"],
  adv: ["slowly", "quickly", "almost", "never", "carefully", "suddenly", "quietly", "again", "twice", "gladly",
    "barely", "really", "perhaps", "finally", "honestly"],
  prep: ["near", "behind", "under", "across", "beside", "inside", "beyond", "along", "without", "toward"],
  name: ["Alice", "Bob", "Clara", "Dmitri", "Eleanor", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kavya", "Liam",
    "Mei", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen", "Yusuf", "Zoe",
    "McAllister", "O'Neill", "D'Arcy", "van der Berg"],
  place: ["Lisbon", "Nairobi", "Osaka", "Reykjavik", "Toronto", "Valparaíso", "Kraków", "São Paulo", "Zürich",
    "New York", "the old town", "the north shore", "Main Street"],
  time: ["yesterday", "last winter", "at dawn", "on Tuesday", "in 1987", "after lunch", "every morning",
    "before the war", "at 6:45 p.m.", "on 2024-03-01", "around midnight", "in the 1990s"],
  interj: ["Well", "Oh", "Look", "Honestly", "Listen", "Hmm", "Wait", "Yes", "No", "Right", "Okay", "Ah"],
};
const CONTRACTIONS = ["I'm", "you're", "we've", "they'll", "she'd", "he's", "it's", "isn't", "don't", "can't",
  "won't", "wouldn't", "shouldn't", "I'd", "I'll", "we're", "they've", "let's", "that's", "there's", "who's",
  "ain't", "y'all", "o'clock", "rock'n'roll"];

const ZH = ["今天天气很好", "我们去公园散步吧", "这个问题很难回答", "他每天早上六点起床", "图书馆里有很多书",
  "请把窗户关上", "火车站离这里不远", "她正在学习中文和日语", "电脑又坏了", "明天会下雨吗",
  "我喜欢喝绿茶", "会议推迟到下周三", "这本小说写得非常好", "孩子们在院子里玩耍", "价格是三百五十元",
  "机器学习模型需要大量数据", "分词器把文本切成词元", "上海", "北京大学", "长江和黄河"];
const ZH_CHARS = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可" +
  "她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长" +
  "龘齉爨鬱麤曦𠀋𠮷𡈽𪚲";
const ZH_PUNCT = ["，", "。", "？", "！", "、", "：", "；", "「", "」", "《", "》", "（", "）", "……", "——", "“", "”"];
const JA = ["東京は日本の首都です。", "ありがとうございます", "今日はいい天気ですね", "コンピューターが動かない",
  "すみません、駅はどこですか？", "私は猫が好きです", "ラーメンを食べに行こう", "カタカナとひらがな",
  "ｶﾀｶﾅの半角文字", "明日の会議は十時からです", "トークナイザーのテスト", "ゔ ゟ ヿ ㇰ", "がぎぐげご パピプペポ",
  "日本語の文章には空白がありません", "「こんにちは」と彼は言った"];
const HIRA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんがざだばぱっゃゅょー";
const KATA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンガザダバパッャュョヴー";
const KO = ["안녕하세요", "감사합니다", "오늘 날씨가 좋네요", "저는 학생입니다", "한국어를 배우고 있어요",
  "서울은 대한민국의 수도입니다", "이 문제는 어렵지 않아요", "내일 다시 만나요", "컴퓨터가 고장났어요",
  "토크나이저 시험", "값은 3,500원입니다"];
const AR = ["مرحبا بالعالم", "السلام عليكم", "كيف حالك اليوم؟", "اللغة العربية جميلة", "ذهبت إلى المكتبة أمس",
  "الْحَمْدُ لِلَّهِ", "مُحَمَّد", "عدد ٣٤٥ كتاباً", "هذا اختبار للمحلل", "القاهرة، مصر", "ﷺ ﷲ"];
const HE = ["שלום עולם", "מה שלומך?", "אני אוהב ללמוד", "ירושלים", "בְּרֵאשִׁית בָּרָא", "תודה רבה",
  "הספר על השולחן", "שָׁלוֹם", "ב-2024 נפגשנו"];
const HI = ["नमस्ते दुनिया", "भारत एक विशाल देश है।", "मैं हिंदी सीख रहा हूँ", "क्या आप ठीक हैं?", "धन्यवाद",
  "विज्ञान और प्रौद्योगिकी", "क़िला ज़रूर फ़िल्म", "संख्या १२३४५", "श्रीमान्", "द्वार क्षत्रिय ज्ञान",
  "हिन्दी में स्वागत है"];
const TH = ["สวัสดีครับ", "ภาษาไทย", "ขอบคุณมาก", "วันนี้อากาศดี", "ฉันชอบกินข้าวผัด", "กรุงเทพมหานคร",
  "เลข ๑๒๓๔", "น้ำ ไม้ ก๊ก ก๋า", "ผู้หญิงคนนั้นกำลังอ่านหนังสือ"];
const OTHER = ["Привет, мир!", "Съешь же ещё этих мягких французских булок", "Ελληνικά: Καλημέρα κόσμε",
  "Tiếng Việt có nhiều dấu", "Phở bò ở Hà Nội", "İstanbul ılık ŞEHİR", "Straße groß ẞ", "Ærøskøbing Øresund",
  "Ωμέγα ΣΊΣΥΦΟΣ σίσυφος", "Ёжик в тумане", "ქართული ენა", "Հայերեն", "ខ្មែរ", "ພາສາລາວ", "မြန်မာ",
  "አማርኛ", "ᏣᎳᎩ", "ᐃᓄᒃᑎᑐᑦ", "ꦗꦮ", "𐌰𐌱𐌲 Gothic", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝 𝒔𝒄𝒓𝒊𝒑𝒕"];

const EMOJI = ["😀", "😂", "🥲", "😍", "🤔", "🙃", "👍", "👋", "🙏", "🎉", "🔥", "✨", "❤️", "❤", "💔", "🚀",
  "🐍", "🦀", "🍕", "☕", "⚡", "✅", "❌", "⭐", "🌍", "🏳️", "🤖", "🧠", "📦", "🫠", "🪿"];
const SKIN_BASE = ["👍", "👋", "🙏", "👩", "👨", "🧑", "👶", "🤷", "🏃", "💪", "✋", "🤝"];
const SKIN = ["\u{1F3FB}", "\u{1F3FC}", "\u{1F3FD}", "\u{1F3FE}", "\u{1F3FF}"];
const ZWJ_SEQ = ["👨‍👩‍👧‍👦", "👩‍💻", "👨🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "👩‍❤️‍💋‍👨", "🧑🏿‍🚀", "🐻‍❄️", "❤️‍🔥",
  "👁️‍🗨️", "🧔‍♀️", "🏃‍♂️‍➡️", "🫱🏻‍🫲🏿", "👩‍👩‍👦", "😶‍🌫️"];
const KEYCAPS = ["1️⃣", "#️⃣", "*️⃣", "0️⃣", "9⃣"];
const TAG_FLAGS = ["🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🏴󠁧󠁢󠁥󠁮󠁧󠁿", "🏴󠁧󠁢󠁷󠁬󠁳󠁿"];

const SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
  "<|reserved_special_token_0|>", "<|reserved_special_token_100|>", "<|reserved_special_token_250|>",
  "<|finetune_right_pad_id|>", "<|python_tag|>", "<|eom_id|>",
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|object_ref_start|>", "<|box_end|>", "<|vision_pad|>",
  "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>",
  "<s>", "</s>", "<unk>"];
// near misses: must be tokenized as ordinary text
const NEAR_SPECIALS = ["<|begin_of_text|", "<|im_start", "|im_end|>", "<|IM_START|>", "< s>", "<s >", "<<s>>",
  "<|reserved_special_token_999|>", "<think", "think>", "</ think>", "<|endoftext||>", "<|<|im_end|>|>", "<S>",
  "<\\s>", "&lt;s&gt;"];

const CODE = [
  "int main(int argc, char **argv) {\n\tprintf(\"%d\\n\", argc);\n\treturn 0;\n}\n",
  "def f(x):\n    if x > 0:\n        return x ** 2\n    return -x  # negative\n",
  "for (let i = 0; i < n; i++) {\n    sum += a[i] * b[i];\n}",
  "{\n  \"name\": \"loft\",\n  \"version\": \"0.1.0\",\n  \"deps\": [\"jansson\", \"pcre2\"]\n}",
  "if [ -f \"$HOME/.bashrc\" ]; then\n\tsource ~/.bashrc\nfi",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
  "class Foo:\n\tdef __init__(self):\n\t\tself.x = {'a': 1, 'b': [2, 3]}\n",
  "x=1;y=2;z=x+y;print(z)",
  "    \t  mixed\t \tindent\n\t    here",
  "fn main() -> Result<(), Box<dyn Error>> {\n    let v: Vec<u8> = vec![0xff; 16];\n    Ok(())\n}",
  "<div class=\"row\">\n  <span id='x'>&amp;&nbsp;</span>\n</div>",
  "a = b || c && !d;  // TODO(user): fix\r\n",
  "#include <stdio.h>\r\n#define MAX(a,b) ((a)>(b)?(a):(b))\r\n",
  "matrix[i][j] += alpha * A[i*lda + k] * B[k*ldb + j];",
  "$ git log --oneline | head -n 10 && echo \"done\" >&2",
  "ls -la /usr/local/lib/*.so.*  2>/dev/null",
  "λx.λy.x ≠ y → ∀z ∈ ℝ: z² ≥ 0",
];

const CASE_WORDS = ["s", "S", "ll", "LL", "Ll", "re", "RE", "rE", "ve", "VE", "m", "M", "d", "D", "t", "T"];

const UNI_SPACES = ["\u00a0", "\u1680", "\u2000", "\u2002", "\u2003", "\u2009", "\u200a", "\u202f", "\u205f",
  "\u3000", "\u2028", "\u2029", "\u0085", "\u000b", "\u000c", "\u001c", "\u001f", "\u200b", "\ufeff", "\u180e",
  "\u200d", "\u2060"];

// ------------------------------------------------------------------ generators
function rep(s, n) { return s.repeat(n); }
function cap(s) { return s.charAt(0).toUpperCase() + s.slice(1); }

function number(r) {
  switch (r.int(7)) {
    case 0: return String(r.range(0, 99));
    case 1: return String(r.range(100, 99999));
    case 2: return `${r.range(1, 999)},${String(r.range(0, 999)).padStart(3, "0")}`;
    case 3: return `${r.range(0, 99)}.${r.range(0, 99)}`;
    case 4: return `$${r.range(1, 500)}.${String(r.range(0, 99)).padStart(2, "0")}`;
    case 5: return `${r.range(1, 100)}%`;
    default: return `${r.range(1900, 2030)}`;
  }
}

function sentence(r) {
  const np = () => `${r.pick(W.det)} ${r.chance(0.6) ? r.pick(W.adj) + " " : ""}${r.pick(W.noun)}`;
  const forms = [
    () => `${cap(np())} ${r.pick(W.verb)} ${np()} ${r.pick(W.prep)} ${np()}.`,
    () => `${r.pick(W.name)} ${r.pick(W.adv)} ${r.pick(W.verb)} ${np()} ${r.pick(W.time)}.`,
    () => `Why had ${r.pick(W.name)} ${r.pick(W.verb)} ${np()}?`,
    () => `${cap(r.pick(W.time))}, ${r.pick(W.name)} and ${r.pick(W.name)} ${r.pick(W.verb)} ${number(r)} ${r.pick(W.noun)}s in ${r.pick(W.place)}.`,
    () => `${cap(np())} — ${r.pick(W.adj)}, ${r.pick(W.adj)} and ${r.pick(W.adj)} — ${r.pick(W.verb)} ${np()}!`,
    () => `${cap(np())} (${r.pick(W.adj)} as ever) ${r.pick(W.verb)} ${np()}; nobody ${r.pick(W.verb)} it.`,
    () => `"${cap(r.pick(W.adj))}," ${r.pick(W.name)} said, "${r.pick(CONTRACTIONS)} ${r.pick(W.adv)} ${r.pick(W.adj)}."`,
    () => `It was ${r.pick(W.adj)}... ${r.pick(W.adv)} ${r.pick(W.adj)}.`,
    () => `Mr. ${r.pick(W.name)} and Dr. ${r.pick(W.name)} met at ${r.range(1, 12)}:${String(r.range(0, 59)).padStart(2, "0")} a.m. in the U.S.A.`,
    () => `The ${r.pick(W.noun)}'s ${r.pick(W.noun)} was ${r.pick(W.adj)}-${r.pick(W.adj)}, wasn't it?`,
    () => `‘${cap(r.pick(W.adj))}’ is what ${r.pick(W.name)} called the ${r.pick(W.noun)} — “${r.pick(W.adj)}” too.`,
  ];
  return r.pick(forms)();
}

function prose_(r) {
  const n = r.range(1, 6);
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(sentence(r));
  let s = parts.join(" ");
  if (r.chance(0.2)) s += "\n\n" + sentence(r);
  return s;
}

function dialogue(r) {
  const who = r.pick(W.name);
  const forms = [
    () => `${who}: ${r.pick(W.interj)}, ${r.pick(CONTRACTIONS)} ${r.pick(W.adv)} going to ${r.pick(W.verbBase)}.`,
    () => `"${r.pick(W.interj)}! ${r.pick(CONTRACTIONS)} not ${r.pick(W.adj)}," ${who} whispered.`,
    () => `- ${cap(r.pick(CONTRACTIONS))} you ${r.pick(W.verbBase)}?\n- ${r.pick(W.interj)}, I ${r.pick(W.verb)} it ${r.pick(W.time)}.`,
    () => `${who.toUpperCase()}: ${r.pick(CONTRACTIONS).toUpperCase()} ${r.pick(W.adj).toUpperCase()}!!!`,
    () => `Q: What's the ${r.pick(W.noun)} for?\nA: ${cap(r.pick(CONTRACTIONS))} for ${r.pick(W.noun)}s.`,
    () => `>> ${who} wrote:\n> ${sentence(r)}\n\n${r.pick(W.interj)}... ${r.pick(CONTRACTIONS)} ${r.pick(W.adj)}?`,
  ];
  return r.pick(forms)();
}

function hanChars(r, n) {
  const cs = [...ZH_CHARS];
  let s = "";
  for (let i = 0; i < n; i++) s += r.pick(cs);
  return s;
}
function chinese(r) {
  const n = r.range(1, 4);
  let s = "";
  for (let i = 0; i < n; i++) s += (r.chance(0.6) ? r.pick(ZH) : hanChars(r, r.range(2, 12))) + r.pick(ZH_PUNCT);
  if (r.chance(0.25)) s += ` GPU ${r.range(1, 999)}个`;
  return s;
}
function japanese(r) {
  if (r.chance(0.5)) return r.pick(JA) + (r.chance(0.5) ? r.pick(JA) : "");
  const h = [...HIRA], k = [...KATA];
  let s = "";
  for (let i = r.range(2, 20); i > 0; i--) s += r.chance(0.5) ? r.pick(h) : r.chance(0.5) ? r.pick(k) : hanChars(r, 1);
  return s + r.pick(["。", "、", "！", "？", "ー", ""]);
}
function hangulSyllable(r) {
  return String.fromCodePoint(0xac00 + r.int(11172));
}
function korean(r) {
  let s = r.chance(0.5) ? r.pick(KO) : "";
  for (let w = r.range(1, 4); w > 0; w--) {
    s += (s ? " " : "");
    for (let i = r.range(1, 5); i > 0; i--) s += hangulSyllable(r);
  }
  // decomposed jamo (NFD): an NFC normaliser (Qwen3) recomposes them, the others must not
  return r.chance(0.3) ? s.normalize("NFD") : s;
}
function rtlAndIndic(r) {
  const src = r.pick([AR, HE, HI, TH, OTHER]);
  let s = r.pick(src);
  if (r.chance(0.5)) s += r.pick([" ", "، ", ". ", "", "\n"]) + r.pick(src);
  if (r.chance(0.2)) s = `${r.pick(W.name)} ${s} ${number(r)}`;
  return s;
}

function emoji(r) {
  const parts = [];
  for (let i = r.range(1, 6); i > 0; i--) {
    switch (r.int(7)) {
      case 0: parts.push(r.pick(EMOJI)); break;
      case 1: parts.push(r.pick(SKIN_BASE) + r.pick(SKIN)); break;
      case 2: parts.push(r.pick(ZWJ_SEQ)); break;
      case 3: { // regional-indicator flag, real or random pair
        const a = r.int(26), b = r.int(26);
        parts.push(String.fromCodePoint(0x1f1e6 + a, 0x1f1e6 + b));
        break;
      }
      case 4: parts.push(r.pick(KEYCAPS)); break;
      case 5: parts.push(r.pick(TAG_FLAGS)); break;
      default: parts.push(r.pick(W.noun)); break;
    }
  }
  return parts.join(r.pick(["", " ", "", "  ", "\n"]));
}

const ACCENTED = ["café", "naïve", "résumé", "Ångström", "Zoë", "façade", "jalapeño", "Ñandú", "crème brûlée",
  "Tiếng Việt", "Phở", "Nguyễn", "Đặng", "ǅemal", "Ελληνικά ἀρχή ῥῆμα", "Ǻǻ Ǽǽ", "ḱṓṡ", "ﬁancé ﬂow",
  "ＡＢＣ１２３", "x² + y³", "Å Å Å", "Ω Ω", "한국어", "ヴ ガ", "ℌ ℍ ℕ", "Ⅻ ⅻ", "① ⑳", "ﾊﾝｶｸ"];
const COMBINING = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u0323", "\u0327", "\u0328",
  "\u0331", "\u0345", "\u034f", "\u0360", "\u0489", "\u20dd", "\u1ab0", "\u1dc0", "\ufe20"];
function combining(r) {
  const f = r.int(6);
  if (f <= 1) {
    const s = r.pick(ACCENTED) + (r.chance(0.5) ? " " + r.pick(ACCENTED) : "");
    return f === 0 ? s.normalize("NFC") : s.normalize("NFD");
  }
  if (f === 2) { // NFKC/NFKD compatibility forms
    const s = r.pick(ACCENTED);
    return r.chance(0.5) ? s.normalize("NFKC") : s.normalize("NFKD");
  }
  // stacked marks with and without precomposed forms, marks at the start, after spaces and digits
  let s = r.pick(["", " ", "a", "q", "e", "7", "😀", "ह", "ك", "ก", "字"]);
  for (let i = r.range(1, 8); i > 0; i--) {
    s += r.pick(COMBINING);
    if (r.chance(0.3)) s += r.pick(["o", "i", " ", "n", "Z", "5"]);
  }
  return r.chance(0.5) ? s : s.normalize(r.chance(0.5) ? "NFC" : "NFD");
}

function whitespace(r) {
  const n = r.pick([1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 100, 127, 128, 200, 255, 256, 300, 500]);
  const unit = r.pick([" ", "\n", "\t", " \n", "\n ", "\r\n", "  \t", "\n\n ", " \t\n", "\u00a0", "\u3000"]);
  const run = rep(unit, Math.max(1, Math.floor(n / unit.length)));
  const word = () => r.pick([...W.noun, "x", "foo()", "}", "#", "1", "東京", "😀"]);
  switch (r.int(6)) {
    case 0: return run;
    case 1: return word() + run + word();
    case 2: return run + word();
    case 3: return word() + run;
    case 4: return r.pick(CODE).replace(/\n/g, "\n" + rep(" ", r.range(0, 40)));
    default: return r.pick(CODE) + run + r.pick(CODE);
  }
}

function uniSpaces(r) {
  let s = "";
  for (let i = r.range(1, 5); i > 0; i--) {
    s += r.pick([...W.noun, "a", "1", "", "!"]);
    for (let j = r.range(1, 3); j > 0; j--) s += r.pick(UNI_SPACES);
  }
  return s;
}

function randomDigits(r, n) {
  let s = String(r.range(1, 9));
  for (let i = 1; i < n; i++) s += String(r.int(10));
  return n === 1 ? String(r.int(10)) : s;
}
function digitsWithLength(r, n) {
  const d = randomDigits(r, n);
  switch (r.int(8)) {
    case 0: return d;
    case 1: return `abc${d}def`;
    case 2: return `${r.pick(W.noun)} ${d} ${r.pick(W.noun)}s`;
    case 3: return `v${d.slice(0, 1)}.${d}.${d.length}`;
    case 4: return `-${d}.${d}e-${n}`;
    case 5: return `0x${d}ff`;
    case 6: return `${d}${r.pick(W.noun)}${d}`;
    default: return ` ${d} `;
  }
}
const OTHER_DIGITS = ["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳", "०१२३४५६७८९", "১২৩", "๐๑๒๓", "１２３４５", "¹²³⁴", "₀₁₂", "½ ¾ ⅓",
  "Ⅰ Ⅱ Ⅻ", "①②③", "𝟎𝟏𝟐𝟑", "〇一二三", "᠐᠑᠒"];

function contractions(r) {
  const forms = [
    () => `${r.pick(W.name)}'${r.pick(CASE_WORDS)} ${r.pick(W.noun)}`,
    () => `I'M ${r.pick(W.adj).toUpperCase()}, YOU'RE ${r.pick(W.adj)}, THEY'LL ${r.pick(W.verbBase)}`,
    () => `DON'T WON'T CAN'T ISN'T don't Don'T dOn't n't N'T 'S 's 'Ll`,
    () => `'${r.pick(CASE_WORDS)}${r.pick(["", " ", "and", "123", "!", "'s"])}`,
    () => `${r.pick(CONTRACTIONS)} ${r.pick(CONTRACTIONS).toUpperCase()} ${r.pick(CONTRACTIONS)}`,
    () => `it’s curly’s ‘quoted’ ‛odd‛ 'ſ 'ſt ''s '''ll ' s`,
    () => `${rep("'", r.range(1, 6))}${r.pick(CASE_WORDS)}${rep("'", r.range(0, 3))}`,
    () => `rock'n'roll O'Neill's d'Artagnan l'été 'twas '90s '${r.range(0, 99)}`,
  ];
  return r.pick(forms)();
}

function specialText(r) {
  const parts = [];
  for (let i = r.range(1, 5); i > 0; i--) {
    const t = r.chance(0.8) ? r.pick(SPECIALS) : r.pick(NEAR_SPECIALS);
    const before = r.pick(["", " ", "  ", "\n", "x", "Hello", "!"]);
    const after = r.pick(["", " ", "\n", "world", "user\n", "Hi there.", "<"]);
    parts.push(before + t + after);
  }
  if (r.chance(0.2)) return `<|im_start|>user\n${sentence(r)}<|im_end|>\n<|im_start|>assistant\n<think>\n${sentence(r)}\n</think>\n\n${sentence(r)}<|im_end|>`;
  if (r.chance(0.2)) return `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n${sentence(r)}<|eot_id|>`;
  if (r.chance(0.1)) return `<s>[INST] ${sentence(r)} [/INST] ${sentence(r)}</s>`;
  return parts.join(r.pick(["", " ", "\n"]));
}

function lineEnds(r) {
  const pieces = ["\r", "\r\n", "\n", "\n\r", "\r\r\n", " \r ", "\r\n\r\n", "\u2028", "\u0085"];
  let s = "";
  for (let i = r.range(1, 6); i > 0; i--) s += r.pick(pieces) + (r.chance(0.7) ? r.pick([...W.noun, "a", "1", "!", "  "]) : "");
  return s;
}

function longWord(r) {
  const n = r.pick([50, 100, 257, 500, 1000, 2000]);
  const letters = "abcdefghijklmnopqrstuvwxyz";
  switch (r.int(10)) {
    case 0: return rep("a", n);
    case 1: { let s = ""; for (let i = 0; i < n; i++) s += letters[r.int(26)]; return s; }
    case 2: return rep("ab", n >> 1);
    case 3: return rep(r.pick(W.noun), Math.max(1, n >> 3));
    case 4: return rep("!", n);
    case 5: return rep("=", n);
    case 6: return randomDigits(r, n);
    case 7: return hanChars(r, Math.min(n, 500));
    case 8: { // base64-ish
      const b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      let s = ""; for (let i = 0; i < n; i++) s += b[r.int(64)]; return s + "==";
    }
    default: return `https://example.com/${rep("very-long-path/", n >> 5)}?q=${randomDigits(r, 12)}&x=%E2%9C%93`;
  }
}

// a code point from anywhere in Unicode except the surrogates
function randomCodePoint(r) {
  const plane = r.pick([0, 0, 0, 1, 1, 2, 3, 14, 15, 16]);
  for (;;) {
    let cp = plane * 0x10000 + r.int(0x10000);
    if (plane === 14 && r.chance(0.8)) cp = 0xe0000 + r.int(0x200); // tags and variation selectors
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    return String.fromCodePoint(cp);
  }
}
function randomText(r) {
  let s = "";
  for (let i = r.range(1, 40); i > 0; i--) s += r.chance(0.15) ? r.pick([" ", "a", "1", "\n"]) : randomCodePoint(r);
  return s;
}

// ------------------------------------------------------------------ assembly
const FRAGMENTS = [prose_, dialogue, chinese, japanese, korean, rtlAndIndic, emoji, combining, uniSpaces,
  contractions, specialText, lineEnds, (r) => digitsWithLength(r, r.range(1, 40)), (r) => r.pick(OTHER_DIGITS),
  (r) => r.pick(CODE), (r) => sentence(r)];
function mixture(r) {
  const parts = [];
  for (let i = r.range(2, 8); i > 0; i--) parts.push(r.pick(FRAGMENTS)(r));
  return parts.join(r.pick(["", " ", "\n", "\t", "  ", " \n"]));
}

function fixedCases() {
  const out = ["", " ", "  ", "\n", "\r", "\r\n", "\t", " a", "a ", "  leading", "trailing  ", " both ", "\u0000",
    "a\u0000b", "\u007f", "Hello", "hello world", " Hello World ", "HELLO", "I", "'", "''", "'s", " 's", "s'",
    "\u00e9", "e\u0301", "\u1e9b\u0323", "\ufeffBOM", "\u2028", "\u0085", "a\u200db"];
  for (let c = 1; c < 128; c++) out.push(String.fromCharCode(c));                 // every ASCII character
  for (let c = 1; c < 128; c++) out.push(`a${String.fromCharCode(c)}b ${String.fromCharCode(c)}${String.fromCharCode(c)}`);
  for (let c = 0x80; c < 0x100; c++) out.push(String.fromCharCode(c) + " x" + String.fromCharCode(c));
  for (const t of SPECIALS) out.push(t, ` ${t} `, `${t}${t}`, `a${t}b`);
  for (const t of NEAR_SPECIALS) out.push(t);
  return out;
}

function main() {
  const args = process.argv.slice(2);
  let seed = 20240917, tagsFile = null, text = false, prose = 0;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--seed") seed = Number(args[++i]);
    else if (args[i] === "--tags") tagsFile = args[++i];
    else if (args[i] === "--text") text = true;
    else if (args[i] === "--prose") prose = Number(args[++i]);
    else {
      process.stderr.write(`tok_corpus.mjs: unknown argument ${args[i]}\n` +
        "usage: tok_corpus.mjs [--seed N] [--tags FILE | --text | --prose BYTES]\n");
      process.exit(2);
    }
  }
  const r = new Rng(seed);
  if (prose > 0) {
    const paras = [];
    for (let bytes = 0; bytes < prose;) {
      const p = r.chance(0.3) ? dialogue(r) : prose_(r);
      paras.push(p);
      bytes += Buffer.byteLength(p) + 2;
    }
    process.stdout.write(paras.join("\n\n") + "\n");
    return;
  }
  const lines = [], tags = [];
  const add = (tag, s) => {
    if (text && s.includes("\u0000")) return;
    lines.push(text ? s : JSON.stringify(s));
    tags.push(tag);
  };
  for (const s of fixedCases()) add("fixed", s);
  const plan = [["prose", 900, prose_], ["dialogue", 400, dialogue], ["chinese", 150, chinese],
    ["japanese", 150, japanese], ["korean", 150, korean], ["scripts", 350, rtlAndIndic], ["emoji", 250, emoji],
    ["combining", 300, combining], ["whitespace", 350, whitespace], ["unicode-space", 120, uniSpaces],
    ["contractions", 250, contractions], ["special-text", 300, specialText], ["line-ends", 120, lineEnds],
    ["long-word", 60, longWord], ["random-codepoints", 150, randomText], ["mixture", 1000, mixture]];
  for (const [tag, n, gen] of plan) for (let i = 0; i < n; i++) add(tag, gen(r));
  // digits: every length 1..40, bare and mixed with letters
  for (let n = 1; n <= 40; n++) {
    add("digits", randomDigits(r, n));
    for (let k = 0; k < 5; k++) add("digits", digitsWithLength(r, n));
  }
  for (const d of OTHER_DIGITS) add("digits", d), add("digits", `x${d}y ${d}`);
  process.stdout.write(lines.join("\n") + "\n");
  if (tagsFile) writeFileSync(tagsFile, tags.join("\n") + "\n");
}

main();
