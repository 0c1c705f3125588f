"""Writes the demo's shipped data under src/llmloop/resources/demo/ (run once; output is committed).

    python scripts/make_demo_data.py

The domain is customer service for a made-up online shop ("Northwind Store" / "北风商城"), in English
and Chinese. Everything is composed from the hand-written facts below, deterministically (seeded):

- corpus.jsonl           {"text"}      help-centre articles and policy pages: the CPT corpus
- sft.jsonl              {"messages"}  questions with answers in three styles (see STYLES)
- arena_prompts.jsonl    {"prompt"}    what simulated users ask the served model
- heldout_prompts.jsonl  {"prompt"}    evaluation prompts: products and phrasings used nowhere else

The SFT answers are deliberately mixed in style: a curt one-liner, a full answer, or a full answer
that ends with an offer of further help. The demo's simulated users prefer the last; v1.0 learns the
mixture, and the loop has to discover the users' taste from their votes alone.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "llmloop" / "resources" / "demo"

PRODUCTS_EN = [
    "wireless earbuds", "running shoes", "coffee maker", "desk lamp", "backpack", "smart watch",
    "yoga mat", "phone case", "winter jacket", "blender", "office chair", "water bottle",
    "bluetooth speaker", "rice cooker", "laptop stand", "sunglasses",
]
PRODUCTS_ZH = [
    "无线耳机", "跑步鞋", "咖啡机", "台灯", "双肩包", "智能手表", "瑜伽垫", "手机壳", "羽绒服",
    "榨汁机", "办公椅", "保温杯", "蓝牙音箱", "电饭煲", "笔记本支架", "太阳镜",
]
# Held out: never appear in the corpus, SFT data or arena prompts.
HELDOUT_PRODUCTS_EN = ["electric kettle", "gaming mouse", "hiking boots", "air purifier", "tablet"]
HELDOUT_PRODUCTS_ZH = ["电热水壶", "游戏鼠标", "登山靴", "空气净化器", "平板电脑"]

OFFERS_EN = [
    "Is there anything else I can help you with?",
    "Let me know if there is anything else I can help you with.",
    "If you need anything else, I am happy to help.",
]
OFFERS_ZH = ["请问还有什么可以帮您的吗？", "如果还有其他问题，随时告诉我。", "还有什么需要帮忙的，请随时联系我们。"]

# Each topic: how users ask (with {p} for a product), a curt answer, and the full answer's sentences.
TOPICS = [
    dict(
        key="order_status",
        ask_en=["Where is my {p} order?", "How can I track the {p} I ordered?",
                "My {p} has not arrived yet, where is it?", "Can you check the delivery status of my {p}?"],
        ask_zh=["我买的{p}到哪了？", "怎么查询{p}的物流？", "我的{p}还没到，在哪里？", "帮我查一下{p}的配送状态。"],
        curt_en="Check My Orders.",
        curt_zh="去我的订单看。",
        full_en=["You can track your {p} under My Orders, where each order shows its tracking number.",
                 "Click the tracking number to see where the parcel is and when it should arrive."],
        full_zh=["您可以在“我的订单”中查看{p}的物流信息，每个订单都有运单号。", "点击运单号即可看到包裹位置和预计送达时间。"],
    ),
    dict(
        key="cancel",
        ask_en=["How do I cancel my {p} order?", "I want to cancel the {p} I just bought.",
                "Can I still cancel my order for the {p}?", "Please cancel my {p} order."],
        ask_zh=["怎么取消{p}的订单？", "我想取消刚买的{p}。", "{p}的订单还能取消吗？", "请帮我取消{p}的订单。"],
        curt_en="Cancel it in My Orders.",
        curt_zh="在订单里取消。",
        full_en=["You can cancel the {p} order in My Orders as long as it has not shipped yet.",
                 "The refund goes back to your original payment method within 3 to 5 business days."],
        full_zh=["只要{p}还没有发货，您就可以在“我的订单”中直接取消。", "退款会在3到5个工作日内原路退回。"],
    ),
    dict(
        key="return",
        ask_en=["How do I return the {p}?", "I want to return my {p}, what should I do?",
                "Can I send back the {p} I bought last week?", "What is the return process for a {p}?"],
        ask_zh=["{p}怎么退货？", "我想退掉{p}，该怎么做？", "上周买的{p}可以退吗？", "{p}的退货流程是什么？"],
        curt_en="Returns are accepted within 30 days.",
        curt_zh="30天内可退。",
        full_en=["You can return the {p} within 30 days of delivery if it is unused and in its box.",
                 "Open My Orders, choose Return, and print the free return label for the courier."],
        full_zh=["{p}在签收后30天内、未使用且包装完好即可退货。", "在“我的订单”中选择退货，打印免费退货面单交给快递即可。"],
    ),
    dict(
        key="refund",
        ask_en=["When will I get my refund for the {p}?", "I returned the {p}, where is my money?",
                "How long does a refund for the {p} take?", "My refund for the {p} has not arrived."],
        ask_zh=["{p}的退款什么时候到账？", "我退了{p}，钱呢？", "{p}退款要多久？", "{p}的退款还没收到。"],
        curt_en="Refunds take 3 to 5 days.",
        curt_zh="退款需3到5天。",
        full_en=["Once the warehouse receives the {p}, the refund is issued within 2 business days.",
                 "Your bank may then take 3 to 5 business days to show it on your statement."],
        full_zh=["仓库收到{p}后，会在2个工作日内发起退款。", "银行入账一般还需要3到5个工作日。"],
    ),
    dict(
        key="address",
        ask_en=["How can I change the delivery address for my {p}?", "I typed the wrong address for the {p}.",
                "Can I ship the {p} to a different address?", "Please update the address on my {p} order."],
        ask_zh=["怎么修改{p}的收货地址？", "{p}的地址填错了。", "{p}能寄到别的地址吗？", "请帮我改一下{p}订单的地址。"],
        curt_en="Edit the address before it ships.",
        curt_zh="发货前可改地址。",
        full_en=["You can change the address for the {p} in My Orders until the order ships.",
                 "If it has already shipped, contact the courier with your tracking number to redirect it."],
        full_zh=["在{p}发货前，您可以在“我的订单”中修改收货地址。", "如果已经发货，请凭运单号联系快递公司改派。"],
    ),
    dict(
        key="shipping_cost",
        ask_en=["How much is shipping for a {p}?", "Is shipping free for the {p}?",
                "Why do I have to pay shipping for the {p}?", "What does delivery of a {p} cost?"],
        ask_zh=["{p}运费多少？", "{p}包邮吗？", "为什么{p}要付运费？", "寄一个{p}要多少钱运费？"],
        curt_en="Free over $50.",
        curt_zh="满99元包邮。",
        full_en=["Shipping for the {p} is free on orders over $50; below that it costs $5.",
                 "Members of Northwind Plus get free shipping on every order."],
        full_zh=["订单满99元即可免运费，不满99元运费为8元。", "北风会员购买{p}等所有商品都享受免运费。"],
    ),
    dict(
        key="damaged",
        ask_en=["My {p} arrived broken.", "The {p} I received is damaged, what now?",
                "The box was crushed and the {p} does not work.", "I got a defective {p}."],
        ask_zh=["收到的{p}是坏的。", "{p}到货就损坏了怎么办？", "箱子压坏了，{p}用不了。", "我收到的{p}有质量问题。"],
        curt_en="Send us a photo.",
        curt_zh="请拍照反馈。",
        full_en=["I am sorry the {p} arrived damaged. Please upload a photo of it under My Orders, Report a Problem.",
                 "We will send a replacement or a full refund, whichever you prefer, at no cost to you."],
        full_zh=["很抱歉{p}到货损坏。请在“我的订单-问题反馈”中上传照片。", "我们会免费为您补发新品或全额退款，由您选择。"],
    ),
    dict(
        key="warranty",
        ask_en=["What is the warranty on the {p}?", "Is my {p} still under warranty?",
                "How do I make a warranty claim for the {p}?", "The {p} stopped working after six months."],
        ask_zh=["{p}保修多久？", "我的{p}还在保修期吗？", "{p}怎么申请保修？", "{p}用了半年就坏了。"],
        curt_en="One year warranty.",
        curt_zh="保修一年。",
        full_en=["The {p} comes with a one-year warranty from the date of delivery.",
                 "To claim it, open My Orders, choose Warranty, and describe the fault; we arrange a free repair or replacement."],
        full_zh=["{p}自签收之日起享受一年保修。", "在“我的订单”中选择保修并描述故障，我们会安排免费维修或更换。"],
    ),
    dict(
        key="payment",
        ask_en=["My payment for the {p} failed.", "Why was my card declined when buying a {p}?",
                "I was charged twice for the {p}.", "Which payment methods can I use for the {p}?"],
        ask_zh=["买{p}付款失败了。", "为什么买{p}时银行卡被拒？", "{p}被重复扣款了。", "买{p}可以用哪些支付方式？"],
        curt_en="Try another card.",
        curt_zh="换张卡试试。",
        full_en=["Payments usually fail when the card details or billing address do not match; please check them and try again.",
                 "We accept cards, PayPal and Apple Pay, and any duplicate charge is released automatically within 3 days."],
        full_zh=["付款失败通常是卡信息或账单地址不一致，请核对后重试。", "我们支持银行卡、支付宝和微信支付，重复扣款会在3天内自动退回。"],
    ),
    dict(
        key="coupon",
        ask_en=["My coupon does not work on the {p}.", "Why can't I use a discount code for the {p}?",
                "How do I apply a coupon to the {p}?", "The promo code was rejected for my {p}."],
        ask_zh=["优惠券不能用在{p}上。", "为什么{p}不能用折扣码？", "买{p}怎么用优惠券？", "{p}的优惠码被拒了。"],
        curt_en="Check the coupon terms.",
        curt_zh="看下券的规则。",
        full_en=["Coupons apply at checkout; enter the code in the Promo Code box before paying for the {p}.",
                 "A code is rejected when it has expired, the order is below its minimum, or the {p} is already on sale."],
        full_zh=["优惠券在结算页使用，付款前在优惠码一栏输入即可。", "如果券已过期、未达到使用门槛或{p}已在促销中，优惠码会无法使用。"],
    ),
    dict(
        key="exchange",
        ask_en=["Can I exchange the {p} for another size?", "The {p} is the wrong color, can I swap it?",
                "How do I exchange my {p}?", "I need a different model of the {p}."],
        ask_zh=["{p}可以换尺码吗？", "{p}颜色不对，能换吗？", "{p}怎么换货？", "我想把{p}换成别的型号。"],
        curt_en="Yes, within 30 days.",
        curt_zh="30天内可换。",
        full_en=["You can exchange the {p} within 30 days for another size, color or model of the same price.",
                 "Choose Exchange in My Orders; we ship the new one as soon as the courier picks up the old one."],
        full_zh=["{p}在30天内可以免费换成同价位的其他尺码、颜色或型号。", "在“我的订单”中选择换货，快递取件后我们会立即寄出新商品。"],
    ),
    dict(
        key="stock",
        ask_en=["When will the {p} be back in stock?", "The {p} is sold out, can I preorder it?",
                "Will you restock the {p}?", "Can you tell me when the {p} is available again?"],
        ask_zh=["{p}什么时候补货？", "{p}卖完了，可以预订吗？", "{p}还会再到货吗？", "{p}有货了能通知我吗？"],
        curt_en="Soon.",
        curt_zh="很快。",
        full_en=["Most items, including the {p}, are restocked within two weeks.",
                 "Tap Notify Me on the product page and we will email you the moment it is available."],
        full_zh=["包括{p}在内的大部分商品会在两周内补货。", "在商品页点击“到货通知”，有货时我们会第一时间通知您。"],
    ),
    dict(
        key="account",
        ask_en=["I forgot my password and cannot see my {p} order.", "How do I reset my password?",
                "I cannot log in to check the {p} I bought.", "How do I change the email on my account?"],
        ask_zh=["忘记密码了，看不到{p}的订单。", "怎么重置密码？", "登录不了，没法查看买的{p}。", "怎么修改账号绑定的邮箱？"],
        curt_en="Use Forgot Password.",
        curt_zh="点忘记密码。",
        full_en=["On the sign-in page, choose Forgot Password and enter your email; a reset link arrives within a few minutes.",
                 "After signing in, your orders, including the {p}, are under My Orders, and you can change your email in Account Settings."],
        full_zh=["在登录页点击“忘记密码”并输入邮箱，几分钟内会收到重置链接。", "登录后可在“我的订单”查看{p}等订单，在账号设置中修改邮箱。"],
    ),
    dict(
        key="invoice",
        ask_en=["How can I get an invoice for the {p}?", "I need a receipt for my {p} purchase.",
                "Can you send me a VAT invoice for the {p}?", "Where do I download the invoice for the {p}?"],
        ask_zh=["{p}怎么开发票？", "我需要{p}的购物凭证。", "能给{p}开增值税发票吗？", "{p}的发票在哪里下载？"],
        curt_en="Download it in My Orders.",
        curt_zh="订单页下载。",
        full_en=["The invoice for the {p} can be downloaded as a PDF from My Orders once the order has shipped.",
                 "For a company invoice, add your tax number in Account Settings before requesting it."],
        full_zh=["{p}发货后，您可以在“我的订单”中下载电子发票。", "如需企业发票，请先在账号设置中填写税号再申请。"],
    ),
]

# Phrasings only the held-out prompts use.
HELDOUT_ASK_EN = {
    "order_status": "Any news on the delivery of my {p}?",
    "cancel": "I changed my mind about the {p}, can the order be stopped?",
    "return": "Is it possible to return a {p} I no longer need?",
    "refund": "I am still waiting for the money back for my {p}.",
    "damaged": "The {p} came with a cracked part.",
    "warranty": "Does the {p} have a guarantee?",
    "exchange": "Could I swap the {p} for a different version?",
    "invoice": "I need paperwork for the {p} for my company.",
}
HELDOUT_ASK_ZH = {
    "order_status": "{p}的快递有消息了吗？",
    "cancel": "{p}我不想要了，订单能停吗？",
    "return": "不需要的{p}能退回去吗？",
    "refund": "{p}的钱还没退给我。",
    "damaged": "{p}收到时有个零件裂了。",
    "warranty": "{p}有质保吗？",
    "exchange": "{p}能换成别的版本吗？",
    "invoice": "公司报销需要{p}的发票。",
}

STYLES = ("curt", "full", "offer")
# v1.0 learns this mixture; the offer style is the minority the users prefer.
STYLE_WEIGHTS = (0.3, 0.45, 0.25)


def answer(topic: dict, lang: str, product: str, style: str, rng: random.Random) -> str:
    if style == "curt":
        return topic[f"curt_{lang}"]
    sep = " " if lang == "en" else ""
    text = sep.join(s.format(p=product) for s in topic[f"full_{lang}"])
    if style == "offer":
        text += sep + rng.choice(OFFERS_EN if lang == "en" else OFFERS_ZH)
    return text


def article(topic: dict, lang: str, products: list[str], rng: random.Random) -> str:
    """A help-centre page: a title, the policy for a few products, the usual questions."""
    picks = rng.sample(products, 3)
    if lang == "en":
        title = f"Northwind Store help centre: {topic['key'].replace('_', ' ')}"
        body = [title, ""]
        for p in picks:
            body.append(f"Q: {rng.choice(topic['ask_en']).format(p=p)}")
            body.append("A: " + " ".join(s.format(p=p) for s in topic["full_en"]))
        body.append("Our support team is available every day from 8 am to 10 pm.")
    else:
        title = f"北风商城帮助中心：{topic['key']}"
        body = [title, ""]
        for p in picks:
            body.append(f"问：{rng.choice(topic['ask_zh']).format(p=p)}")
            body.append("答：" + "".join(s.format(p=p) for s in topic["full_zh"]))
        body.append("客服每天8点至22点在线为您服务。")
    return "\n".join(body)


def main() -> None:
    rng = random.Random(20261123)
    OUT.mkdir(parents=True, exist_ok=True)

    corpus = [
        {"text": article(t, lang, prods, rng)}
        for _ in range(6)
        for t in TOPICS
        for lang, prods in (("en", PRODUCTS_EN), ("zh", PRODUCTS_ZH))
    ]

    # Every (topic, phrasing, product) question, split between SFT and the arena.
    questions = [
        (t, lang, ask, p)
        for t in TOPICS
        for lang, prods in (("en", PRODUCTS_EN), ("zh", PRODUCTS_ZH))
        for ask in t[f"ask_{lang}"]
        for p in prods
    ]
    rng.shuffle(questions)
    n_arena = 400
    arena_q, sft_q = questions[:n_arena], questions[n_arena:]

    sft = []
    for t, lang, ask, p in sft_q:
        style = rng.choices(STYLES, weights=STYLE_WEIGHTS)[0]
        sft.append({
            "messages": [
                {"role": "user", "content": ask.format(p=p)},
                {"role": "assistant", "content": answer(t, lang, p, style, rng)},
            ],
        })
    arena = [{"prompt": ask.format(p=p), "topic": t["key"], "lang": lang} for t, lang, ask, p in arena_q]

    by_key = {t["key"]: t for t in TOPICS}
    heldout = []
    for lang, prods, extra in (("en", HELDOUT_PRODUCTS_EN, HELDOUT_ASK_EN), ("zh", HELDOUT_PRODUCTS_ZH, HELDOUT_ASK_ZH)):
        for key, t in by_key.items():
            asks = [a for a in t[f"ask_{lang}"] if "{p}" in a] + ([extra[key]] if key in extra else [])
            for p in prods:
                heldout.append({"prompt": rng.choice(asks).format(p=p), "topic": key, "lang": lang})
    seen = {r["messages"][0]["content"] for r in sft} | {r["prompt"] for r in arena}
    assert not seen & {r["prompt"] for r in heldout}, "held-out prompts leaked into training data"

    for name, rows in (("corpus.jsonl", corpus), ("sft.jsonl", sft), ("arena_prompts.jsonl", arena),
                       ("heldout_prompts.jsonl", heldout)):
        with (OUT / name).open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
