"""Balanced line wrapping of Chinese text for flowchart labels, with the line-breaking rules (禁则).

The rules are those of GB/T 15834 and the W3C's *Requirements for Chinese Text Layout* (clreq §3.1.7),
which agree with the Unicode line-breaking classes (UAX #14) that matter for Chinese:

- 行首禁则: a line never starts with closing punctuation (``）」》】”’``), a pause or stop mark (``、，。；：！？``),
  a middle dot (``·``), a per-cent or degree sign, or the second half of ``——`` / ``……``;
- 行尾禁则: a line never ends with opening punctuation (``（「《【“‘``) or a currency sign;
- a run of Latin letters and digits (``UKey``, ``0.5``, ``scjg``) is never split, nor is ``——`` or ``……``,
  nor a comparison (``人数 > 0``);
- a space where a line breaks is dropped.

Among the breaks that keep these rules, :func:`wrap` takes the fewest lines that fit the width (or one
more, where that keeps a word whole), then the most even line lengths (``text-wrap: balance``),
preferring to break at punctuation or a space and not inside brackets or inside a word. Words are found
by forward maximum matching against a small vocabulary of the words of government services
(:data:`WORDS`); a text with none of them is broken between any two characters. Widths are counted in
columns: a Chinese character or full-width mark takes two.

The Unicode line-breaking algorithm (UAX #14, e.g. the ``uniseg`` package) gives the same break
opportunities on these labels; it knows no words, and a phrase breaker such as BudouX split words of
our labels (抄告施/工许/可), so the rules are kept here, with tests, rather than taken from a package.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# may not start a line (行首禁则): closing brackets and quotes, pause and stop marks, and the like
NO_START = frozenset(
    "!%),.:;?]}¢°·'\"†‡›℃∶、。〃〆〕〗〙〛〞﹚﹜！＂％＇），．：；？］｝～｠｡｣､･ー…‥—–/»’”」』》〉】〗‰′″・"
)
# may not end a line (行尾禁则): opening brackets and quotes, currency signs
NO_END = frozenset("([{£¥$‘“‵〈《「『【〔〖〘〚〝﹙﹛＄（［｛｟｢￡￥«")
# never split (two-em dash and ellipsis come in pairs)
PAIRED = frozenset("—…")
NBSP = "\u00a0"  # a space that never breaks (若 stays with its condition)
# comparison operators in conditions: kept with the value that follows
OPERATORS = frozenset("=≠≥≤<>")
# breaks after these (or before an opening bracket) read naturally; inside brackets they do not
_GOOD_AFTER = frozenset("、，；：。！？,;: ")
_OPENING = frozenset("（([【《「『“")
_CLOSING = frozenset("）)]】》」』”")
_WORD = frozenset("._-+%&'#@")


# Words of government services that a line should not split (审查 not 审/查). Unknown words may
# still be split, at a higher cost than between two known words.
WORDS = frozenset(
    """
    一窗 一网 受理 综合 窗口 政务 服务 中心 登记 不动产 证书 证照 电子 转移 登簿 缮证 交易 资金 监管 协议
    备案 人力资源 社会 保障 保障局 人工 审核 本市 户籍 比对 不一致 补换领 人民 防空 办公室 人防 工程 易地
    建设 建设费 核定 企业 设立 营业执照 执照 营业 核发 住房 公积金 单位 缴存 管理 退休 提取 城乡 建设局
    供水 供电 过户 公司 公安局 公章 刻制 养老金 发放 社保卡 金融 账户 确认 出生 医学 证明 首次 签发 户口
    办理 结果 短信 告知 办结 助产 机构 劳动 能力 鉴定 医疗 卫生 健康 委员会 印章 回执 首套 参保 职工 人数
    发票 申领 税务 同步 宽带 有线电视 燃气 员工 保险 商业 银行 开户行 开户 城市 建筑 垃圾 建筑垃圾 处置
    核准 文件 执法局 执法 城镇 污水 排入 排水 管网 许可证 许可 施工 施工期 临时 基本 待遇 通知 契税
    个人所得税 税费 缴纳 存量房 买卖 合同 网签 核验 实体卡 制作 审管 联动 推送 质量 安全 监督 居民
    户口簿 登记页 工改 市场 年龄 周岁 身份证号 计算 实名 核身 是否 通过 人脸 识别 已持有 有效 优待证 规划
    市政 排放 产生 外运 特殊 消防 设计 审查 意见书 地下室 防雷 装置 易燃易爆 场所 高层 预约 母亲 参加
    生育 气象局 减灾 水务局 水电气网 工种 提前 公示 费用 报销 津贴 科学 育儿 指导 疾病 预防 控制 接种
    秒批 税收 完税 统一 出件 开办 大礼包 网上 老年人 老龄 工作 联合 踏勘 现场 勘验 自然资源 汇总 抄告
    并联 部门 证件 形式 类型 完全 丧失 运营商 通信 批准 结建 工程类别 房屋 系统 填写 医保 缴费 年限 认定
    工龄 时间 审批 审批表 配建 需要 申请 材料 牵头 会同 承办 限时 工作日 工作小时 自然日 条件 满足 环节
    汇聚 并联 分支 必经 逾期 预警 黄牌 红牌 已办 待办 办理中 跳过 补正 退回 取消 不予 未到达 等待 平均
    事项 一件事 规则 自动 通知 人民政府 复议 诉讼 行政 信息 数据 共享 信用 代码 名称 地址 经营 范围 法定
    承诺 时限 结论 确认表 意见 送达 邮寄 免费 领取 在线 证明书 核查 告知书 交付 评价 办件
    """.split()  # noqa: SIM905 (a list of words reads best as words)
)
_LONGEST_WORD = max(len(word) for word in WORDS)


def char_width(char: str) -> int:
    """Columns one character takes: two for Chinese characters and full-width forms, else one."""
    if unicodedata.east_asian_width(char) in "WF":
        return 2
    return 2 if char in "“”‘’…—" else 1


def text_width(text: str) -> int:
    return sum(char_width(c) for c in text)


def _is_word(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in _WORD)


def break_allowed(before: str, after: str) -> bool:
    """May a line break fall between these two characters?"""
    if NBSP in (before, after):
        return False
    if after in NO_START or before in NO_END:
        return False
    if before in PAIRED and after == before:
        return False
    if before in OPERATORS:
        return False
    if _is_word(before) and _is_word(after):
        return False
    if after == " ":  # break after a space, not before it
        return False
    return not (before.isdigit() and after in "%‰℃")


def units(text: str) -> list[str]:
    """The text cut at every allowed break: each piece must stay on one line."""
    pieces: list[str] = []
    for index, char in enumerate(text):
        before = text[index - 1] if index else ""
        # a comparison stays whole (人数 > 0): no break after its operator, nor before it unless quoted
        # text follows (退休类型 / = “因病完全丧失劳动能力退休”)
        after_operator = index > 1 and text[index - 2] in OPERATORS
        quoted = text[index + 2 : index + 3] in ("“", "‘")
        around_operator = before == " " and (after_operator or (char in OPERATORS and not quoted))
        # nor after spaces that follow opening punctuation (“ 业)
        opened = before == " " and text[:index].rstrip(" ")[-1:] in NO_END
        if pieces and (around_operator or opened or not break_allowed(before, char)):
            pieces[-1] += char
        else:
            pieces.append(char)
    return pieces


def inside_words(text: str, words: frozenset[str] = WORDS) -> set[int]:
    """Offsets ``i`` where a break between ``text[i-1]`` and ``text[i]`` would split one of
    ``words`` (found by forward maximum matching)."""
    inside: set[int] = set()
    longest = max((len(w) for w in words), default=0)
    index = 0
    while index < len(text):
        for size in range(min(longest, len(text) - index), 1, -1):
            if text[index : index + size] in words:
                inside.update(range(index + 1, index + size))
                index += size
                break
        else:
            index += 1
    return inside


def _penalty(left: str, right: str, depth: int, inside: int, width: int) -> float:
    """Cost (in squared columns, like the raggedness it is weighed against) of breaking between two
    pieces: none at punctuation or a space, a little between two words, more inside a kept phrase
    (``inside`` 1), much inside a word (``inside`` 2), and more inside brackets."""
    last, first = left[-1], right[0]
    if last in _GOOD_AFTER or last in _CLOSING or first in _OPENING:
        return 0.0
    cost = (0.05, 0.3, 0.8)[inside] * width * width
    return cost + (0.2 * width * width if depth > 0 else 0.0)


@lru_cache(maxsize=4096)
def _wrap(text: str, width: int, keep: frozenset[str]) -> tuple[str, ...]:
    pieces = units(text)
    if not pieces:
        return ()
    # bracket depth before each piece, for the penalty
    depths, depth = [], 0
    for piece in pieces:
        depths.append(depth)
        for char in piece:
            depth += char in _OPENING
            depth -= char in _CLOSING and depth > 0
    count = len(pieces)
    in_word, in_phrase = inside_words(text), inside_words(text, keep)
    offsets, offset = [], 0  # where each piece starts in the text
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)

    def line(i: int, j: int) -> str:
        return "".join(pieces[i:j]).strip(" ")

    widths = {(i, j): text_width(line(i, j)) for i in range(count) for j in range(i + 1, count + 1)}

    def fits(i: int, j: int) -> bool:
        return widths[i, j] <= width or j == i + 1  # a piece wider than the line stands alone

    # best[k][j] = least cost of pieces[:j] in k lines; the fewest lines that fit, or one more when
    # that spares a split word (each line costs as much as a full line's raggedness)
    inf = float("inf")
    best: list[list[float]] = [[0.0] + [inf] * count]
    choice: list[list[int]] = [[0] * (count + 1)]
    fewest = 0
    while not fewest or len(best) <= fewest + 1:
        row, back = [inf] * (count + 1), [0] * (count + 1)
        previous = best[-1]
        for j in range(1, count + 1):
            for i in range(j - 1, -1, -1):
                if not fits(i, j):
                    break
                if previous[i] == inf:
                    continue
                cost = previous[i] + widths[i, j] ** 2
                if j < count:
                    cost += _penalty(
                        pieces[j - 1],
                        pieces[j],
                        depths[j],
                        2 if offsets[j] in in_word else int(offsets[j] in in_phrase),
                        width,
                    )
                if cost < row[j]:
                    row[j], back[j] = cost, i
        best.append(row)
        choice.append(back)
        if not fewest and row[count] < inf:
            fewest = len(best) - 1
        if len(best) > count + 1:
            break
    line_cost = 1.0 * width * width
    totals = {k: best[k][count] + k * line_cost for k in range(fewest, len(best))}
    lines_used = min(totals, key=lambda k: (totals[k], k))
    lines: list[str] = []
    j = count
    for k in range(lines_used, 0, -1):
        i = choice[k][j]
        lines.append(line(i, j))
        j = i
    return tuple(reversed([text for text in lines if text]))


def wrap(text: str, width: int, keep: Iterable[str] = ()) -> list[str]:
    """Lines of at most ``width`` columns (longer only where one unbreakable piece is), in the fewest
    lines (one more where that keeps a word whole), as even as they can be, keeping the 禁则.
    Existing line breaks are kept; a no-break space (:data:`NBSP`) holds its neighbours together and
    comes out as a plain space. ``keep``: phrases better not split, e.g. the form's field labels."""
    words = frozenset(k for k in keep if 1 < len(k) <= 8)
    result: list[str] = []
    for paragraph in text.splitlines() or [""]:
        text = re.sub(r"[ \t]+", " ", paragraph).strip(" ")
        result.extend(line.replace(NBSP, " ") for line in _wrap(text, max(width, 2), words))
    return result


def violations(lines: list[str]) -> list[str]:
    """What breaks the 禁则 in already wrapped lines (for tests and checks): empty when none does."""
    problems = []
    for number, text in enumerate(lines, 1):
        if text and text[0] in NO_START:
            problems.append(f"line {number} starts with {text[0]!r}: {text!r}")
        if text and text[-1] in NO_END:
            problems.append(f"line {number} ends with {text[-1]!r}: {text!r}")
    return problems
