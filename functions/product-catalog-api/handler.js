// product-catalog-api: read side of the catalog.
//   GET /categories                          -> list of categories
//   GET /products?category=C[&sort=EXPR]     -> list of products (all products without category)
//   GET /products/ID                         -> one product
// GET /products/ID is served from the warm instance's cache file
// /tmp/catalog-cache.json ({"expires": epochMs, "products": {id: product}})
// while it has not expired (TTL 30 s); when it is cold or expired the whole catalog is
// loaded into it, and a product missing from a warm cache is added to it.
'use strict';

const fs = require('fs');
const store = require('../store');

const CACHE_FILE = '/tmp/catalog-cache.json';
const CACHE_TTL_MS = 30 * 1000;
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CATEGORY = /^[a-z0-9][a-z0-9-]{0,39}$/;
const MAX_SORT_LENGTH = 10000;

const fail = (statusCode, error) => Object.assign(new Error(error), { statusCode });

const PRODUCT_COLUMNS = 'id, category, name, brand, description, price, image';

function toProduct(row) {
  return {
    id: row.id,
    category: row.category,
    name: row.name,
    brand: row.brand,
    description: row.description,
    price: row.price,
    image: row.image,
  };
}

function param(value, name) {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== 'string') {
    throw fail(400, `${name} must be given once`);
  }
  return value;
}

async function listCategories() {
  const { rows } = await store.query(
    `SELECT c.name, c.description, count(p.id)::int AS products
       FROM categories c LEFT JOIN products p ON p.category = c.name
      GROUP BY c.name, c.description
      ORDER BY c.name`,
  );
  return rows;
}

function compileSort(sort) {
  if (sort.length > MAX_SORT_LENGTH) {
    throw fail(400, 'sort expression too long');
  }
  try {
    // Deliberate vulnerability (attack kit target): the client's sort expression is
    // compiled as JavaScript (a comparator body) and runs inside this process.
    return new Function('a', 'b', 'return ' + sort);
  } catch (err) {
    throw fail(400, `invalid sort expression: ${err.message}`);
  }
}

const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

async function listProducts(query) {
  const category = param(query.category, 'category');
  const sort = param(query.sort, 'sort');

  let rows;
  if (category !== undefined && category !== '') {
    if (!CATEGORY.test(category)) {
      throw fail(400, 'category is not valid');
    }
    const known = await store.query('SELECT 1 FROM categories WHERE name = $1', [category]);
    if (known.rowCount === 0) {
      throw fail(404, `unknown category: ${category}`);
    }
    ({ rows } = await store.query(
      `SELECT ${PRODUCT_COLUMNS} FROM products WHERE category = $1`, [category],
    ));
  } else {
    ({ rows } = await store.query(`SELECT ${PRODUCT_COLUMNS} FROM products`));
  }
  const products = rows.map(toProduct);

  const cmp = sort !== undefined && sort.trim() !== '' ? compileSort(sort) : byId;
  try {
    products.sort(cmp);
  } catch (err) {
    throw fail(400, `sort expression failed: ${err.message}`);
  }
  return products;
}

// Deliberate vulnerability (attack kit target): the cache file in the instance's writable
// /tmp is trusted as it is; whatever it holds is served until its "expires".
function readCache(now) {
  try {
    const cache = JSON.parse(fs.readFileSync(CACHE_FILE, 'utf8'));
    if (cache && typeof cache.expires === 'number' && cache.expires > now
        && cache.products && typeof cache.products === 'object') {
      return cache;
    }
  } catch (_) {
    // missing or unreadable: a miss
  }
  return null;
}

function writeCache(cache) {
  const tmp = `${CACHE_FILE}.${process.pid}.${Date.now()}.tmp`;
  try {
    fs.writeFileSync(tmp, JSON.stringify(cache));
    fs.renameSync(tmp, CACHE_FILE);
  } catch (err) {
    console.error('catalog cache not written:', err.message);
    try {
      fs.unlinkSync(tmp);
    } catch (_) {
      // nothing to clean up
    }
  }
}

async function getProduct(id) {
  if (!ID.test(id)) {
    throw fail(400, 'product id is not valid');
  }
  const now = Date.now();
  const cache = readCache(now);
  if (cache && Object.prototype.hasOwnProperty.call(cache.products, id)) {
    return cache.products[id];
  }

  if (cache) {
    // Warm cache without this product (e.g. created since): add it, keep the expiry.
    const { rows } = await store.query(`SELECT ${PRODUCT_COLUMNS} FROM products WHERE id = $1`, [id]);
    if (rows.length === 0) {
      throw fail(404, `unknown product: ${id}`);
    }
    const product = toProduct(rows[0]);
    writeCache({ expires: cache.expires, products: { ...cache.products, [id]: product } });
    return product;
  }

  // Cold or expired cache: load the catalog and rewrite the cache.
  const { rows } = await store.query(`SELECT ${PRODUCT_COLUMNS} FROM products ORDER BY id`);
  const products = {};
  for (const row of rows) {
    products[row.id] = toProduct(row);
  }
  writeCache({ expires: now + CACHE_TTL_MS, products });

  if (!Object.prototype.hasOwnProperty.call(products, id)) {
    throw fail(404, `unknown product: ${id}`);
  }
  return products[id];
}

module.exports = async (event, context) => {
  if (event.method !== 'GET') {
    throw fail(405, 'use GET');
  }
  const segments = String(event.path || '/').split('/').filter((s) => s !== '');
  let parts;
  try {
    parts = segments.map(decodeURIComponent);
  } catch (_) {
    throw fail(400, 'malformed path');
  }
  const query = event.query || {};

  if (parts.length === 1 && parts[0] === 'categories') {
    return listCategories();
  }
  if (parts.length === 1 && parts[0] === 'products') {
    return listProducts(query);
  }
  if (parts.length === 2 && parts[0] === 'products') {
    return getProduct(parts[1]);
  }
  throw fail(404, 'not found: use /categories, /products or /products/ID');
};
